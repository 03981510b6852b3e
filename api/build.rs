//! Installs the dashboard's front-end libraries from npm and hands their dist files to the
//! compiler (`include_str!(concat!(env!("OUT_DIR"), "/uplot.min.js"))` in
//! `src/dashboard/overview.rs`).
//!
//! The libraries are pinned in `assets/package.json` and `assets/package-lock.json` (exact
//! version and integrity hash); nothing is copied into the repository. `npm ci` runs in
//! `$OUT_DIR/npm` (never in the source tree), and only when that directory was not installed
//! from this very lock file (a stamp with the lock's SHA-256), so an incremental build does
//! not touch the network and a fresh clone installs by itself. `NPM` names the npm binary
//! (default `npm` on `PATH`; `scripts/lib.sh` `ensure_node` installs Node and npm with apt).

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
};

use sha2::{Digest, Sha256};

/// Files taken from `node_modules`, and their names in `$OUT_DIR`.
const DIST: &[(&str, &str)] = &[
    ("uplot/dist/uPlot.iife.min.js", "uplot.min.js"),
    ("uplot/dist/uPlot.min.css", "uplot.min.css"),
];

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let assets = manifest.join("assets");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=assets/package.json");
    println!("cargo::rerun-if-changed=assets/package-lock.json");
    println!("cargo::rerun-if-env-changed=NPM");

    let package = read(&assets.join("package.json"));
    let lock = read(&assets.join("package-lock.json"));
    let stamp = hex(&Sha256::new()
        .chain_update(&package)
        .chain_update([0])
        .chain_update(&lock)
        .finalize());

    let dir = out.join("npm");
    let stamp_file = dir.join("node_modules").join(".rtos-lock-sha256");
    let fresh = fs::read_to_string(&stamp_file).is_ok_and(|s| s.trim() == stamp)
        && DIST
            .iter()
            .all(|(from, _)| dir.join("node_modules").join(from).is_file());
    if !fresh {
        fs::create_dir_all(&dir).expect("create $OUT_DIR/npm");
        write(&dir.join("package.json"), &package);
        write(&dir.join("package-lock.json"), &lock);
        npm_ci(&dir);
        write(&stamp_file, stamp.as_bytes());
    }
    for (from, to) in DIST {
        let src = dir.join("node_modules").join(from);
        fs::copy(&src, out.join(to))
            .unwrap_or_else(|e| panic!("copy {} to $OUT_DIR/{to}: {e}", src.display()));
    }
}

fn npm_ci(dir: &Path) {
    let npm = env::var("NPM").unwrap_or_else(|_| "npm".to_string());
    // --ignore-scripts: a library's install scripts never run during our build.
    let status = Command::new(&npm)
        .args([
            "ci",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
            "--prefer-offline",
            "--loglevel=error",
        ])
        .current_dir(dir)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!(
            "`{npm} ci` for the dashboard's libraries (api/assets/package-lock.json) failed ({s}); \
             it needs the npm registry (or a warm npm cache)"
        ),
        Err(e) => panic!(
            "cannot run `{npm}` ({e}): building retentionos-api needs Node.js and npm to install \
             the dashboard's chart library (uPlot, pinned in api/assets/package-lock.json). \
             Install them (`apt-get install nodejs npm`, or `source scripts/lib.sh && ensure_node`) \
             or set NPM to the npm binary"
        ),
    }
}

fn read(p: &Path) -> Vec<u8> {
    fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

fn write(p: &Path, body: &[u8]) {
    fs::write(p, body).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
