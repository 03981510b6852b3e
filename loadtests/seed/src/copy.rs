//! Binary `COPY` encoding and streaming: the row encoder ([`Sink`]) that a blocking
//! generator fills, the consumer that streams its chunks over a dedicated connection, and
//! [`pump`], which runs a generator against one consumer per table.

use std::{io::Write as _, sync::Arc};

use anyhow::{anyhow, Context as _};
use sqlx::{
    postgres::{PgConnectOptions, PgConnection},
    Connection as _,
};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::clock::PG_EPOCH_US;

pub(crate) const CHUNK: usize = 2 << 20;

pub(crate) enum Msg {
    Data(Vec<u8>),
    /// The generator finished: commit.
    Done,
}

/// A binary-`COPY` row encoder that hands full chunks to a consumer task.
pub(crate) struct Sink {
    tx: mpsc::Sender<Msg>,
    buf: Vec<u8>,
    rows: u64,
}

impl Sink {
    pub(crate) fn new(tx: mpsc::Sender<Msg>) -> Self {
        let mut buf = Vec::with_capacity(CHUNK + 64 * 1024);
        buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        buf.extend_from_slice(&0i32.to_be_bytes()); // flags
        buf.extend_from_slice(&0i32.to_be_bytes()); // header extension length
        Self { tx, buf, rows: 0 }
    }

    pub(crate) fn row(&mut self, fields: i16) {
        self.buf.extend_from_slice(&fields.to_be_bytes());
        self.rows += 1;
    }

    pub(crate) fn len(&mut self, n: usize) {
        self.buf.extend_from_slice(&(n as i32).to_be_bytes());
    }

    pub(crate) fn null(&mut self) {
        self.buf.extend_from_slice(&(-1i32).to_be_bytes());
    }

    pub(crate) fn uuid(&mut self, u: &Uuid) {
        self.len(16);
        self.buf.extend_from_slice(u.as_bytes());
    }

    pub(crate) fn text(&mut self, s: &str) {
        self.len(s.len());
        self.buf.extend_from_slice(s.as_bytes());
    }

    pub(crate) fn opt_text(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.text(s),
            None => self.null(),
        }
    }

    pub(crate) fn text_fmt(&mut self, args: std::fmt::Arguments<'_>) {
        let at = self.buf.len();
        self.len(0);
        self.buf.write_fmt(args).expect("writing to a Vec");
        let n = (self.buf.len() - at - 4) as i32;
        self.buf[at..at + 4].copy_from_slice(&n.to_be_bytes());
    }

    pub(crate) fn int8(&mut self, v: i64) {
        self.len(8);
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn int4(&mut self, v: i32) {
        self.len(4);
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn boolean(&mut self, v: bool) {
        self.len(1);
        self.buf.push(v as u8);
    }

    /// `timestamptz` from Unix microseconds.
    pub(crate) fn ts(&mut self, us: i64) {
        self.int8(us - PG_EPOCH_US);
    }

    pub(crate) fn opt_ts(&mut self, us: Option<i64>) {
        match us {
            Some(us) => self.ts(us),
            None => self.null(),
        }
    }

    pub(crate) fn jsonb(&mut self, s: &str) {
        self.len(s.len() + 1);
        self.buf.push(1); // jsonb binary format version
        self.buf.extend_from_slice(s.as_bytes());
    }

    /// Hands the buffer to the consumer once it holds a full chunk.
    pub(crate) fn flush_if_full(&mut self) -> anyhow::Result<()> {
        if self.buf.len() >= CHUNK {
            let full = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK + 64 * 1024));
            self.tx
                .blocking_send(Msg::Data(full))
                .map_err(|_| anyhow!("a COPY stream stopped"))?;
        }
        Ok(())
    }

    /// Sends the rest and the trailer, then tells the consumer to commit.
    pub(crate) fn finish(mut self) -> anyhow::Result<u64> {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        let rest = std::mem::take(&mut self.buf);
        self.tx
            .blocking_send(Msg::Data(rest))
            .and_then(|_| self.tx.blocking_send(Msg::Done))
            .map_err(|_| anyhow!("a COPY stream stopped"))?;
        Ok(self.rows)
    }
}

pub(crate) fn channel() -> (mpsc::Sender<Msg>, mpsc::Receiver<Msg>) {
    mpsc::channel(16)
}

/// Streams one table: sends chunks until the generator says `Done`, then commits.
/// `Ok(None)` when the generator stopped without finishing (the `COPY` is aborted).
pub(crate) async fn consume(
    opts: Arc<PgConnectOptions>,
    statement: String,
    mut rx: mpsc::Receiver<Msg>,
) -> anyhow::Result<Option<u64>> {
    let mut conn = PgConnection::connect_with(&opts)
        .await
        .context("seed: connecting for COPY")?;
    // Not macros (here and the ANALYZE at the end): utility statements, which PostgreSQL
    // cannot describe for the query macros.
    sqlx::raw_sql("SET statement_timeout = 0; SET synchronous_commit = off")
        .execute(&mut conn)
        .await?;
    // Foreign-key checks are a third of the load time, and every reference is to a row
    // this run wrote (or verified) and committed: skip them when allowed (superuser).
    if let Err(e) = sqlx::raw_sql("SET session_replication_role = replica")
        .execute(&mut conn)
        .await
    {
        tracing::debug!(error = %e, "seed: foreign-key checks stay on");
    }
    let mut copy = conn
        .copy_in_raw(&statement)
        .await
        .with_context(|| format!("seed: {statement}"))?;
    let rows = loop {
        match rx.recv().await {
            Some(Msg::Data(chunk)) => {
                copy.send(chunk)
                    .await
                    .with_context(|| format!("seed: {statement}"))?;
            }
            Some(Msg::Done) => {
                break Some(
                    copy.finish()
                        .await
                        .with_context(|| format!("seed: {statement}"))?,
                );
            }
            None => {
                let _ = copy.abort("seed generator stopped").await;
                break None;
            }
        }
    };
    let _ = conn.close().await;
    Ok(rows)
}

/// Runs a generator against its consumers; returns the generator's value and each
/// consumer's row count, preferring a database error over the generator's "stream
/// stopped" error.
pub(crate) async fn pump<T: Send + 'static>(
    opts: &Arc<PgConnectOptions>,
    statements: Vec<String>,
    generate: impl FnOnce(Vec<Sink>) -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<(T, Vec<u64>)> {
    let mut sinks = Vec::new();
    let mut consumers = Vec::new();
    for st in statements {
        let (tx, rx) = channel();
        sinks.push(Sink::new(tx));
        consumers.push(tokio::spawn(consume(opts.clone(), st, rx)));
    }
    let generated = tokio::task::spawn_blocking(move || generate(sinks)).await;
    let mut counts = Vec::new();
    let mut first_err = None;
    for c in consumers {
        match c.await {
            Ok(Ok(n)) => counts.push(n),
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(e) => {
                first_err.get_or_insert(anyhow!("seed: COPY task failed: {e}"));
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    let value = generated.map_err(|e| anyhow!("seed: generator panicked: {e}"))??;
    let counts = counts
        .into_iter()
        .map(|n| n.ok_or_else(|| anyhow!("seed: a COPY was aborted")))
        .collect::<anyhow::Result<Vec<u64>>>()?;
    Ok((value, counts))
}
