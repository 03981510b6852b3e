"""A throwaway SMTP server for the tests (harness::smtp::ThrowawaySmtp starts it).

    python3 smtp_sink.py PORT DIR

Listens on 127.0.0.1:PORT (aiosmtpd) and accepts every message; PORT 0 binds a port of the
kernel's choosing (no probe-then-bind race), named in DIR/ready. Each one is written to
DIR/msg-NNNNNN.json (NNNNNN counts up in arrival order) as
{mail_from, rcpt_tos, from, to, subject, message_id, text}: the envelope, the decoded
From/To/Subject/Message-ID headers and the decoded text/plain body with CRLF line endings
(SMTP's, on the wire) turned back into LF. The file is complete before the server answers
250 to DATA, so a client whose send returned has its message on disk already.

When the server accepts connections it writes DIR/ready (the port, in decimal). It runs until
SIGTERM/SIGINT.
"""

import email
import json
import os
import signal
import socket
import sys
import threading
from email import policy

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        # One event loop thread calls this, so the counter needs no lock.
        self.count += 1
        record = {"mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos)}
        try:
            msg = email.message_from_bytes(envelope.original_content, policy=policy.default)
            body = msg.get_body(("plain",))
            text = body.get_content() if body is not None else None
            record.update(
                {
                    "from": header(msg, "From"),
                    "to": header(msg, "To"),
                    "subject": header(msg, "Subject"),
                    "message_id": header(msg, "Message-ID"),
                    "text": text.replace("\r\n", "\n") if text is not None else None,
                }
            )
        except Exception as e:  # keep the message: the test shows what went wrong
            record["parse_error"] = repr(e)
        name = os.path.join(self.directory, "msg-%06d.json" % self.count)
        with open(name + ".tmp", "w", encoding="utf-8") as f:
            json.dump(record, f, ensure_ascii=False)
        os.rename(name + ".tmp", name)  # readers never see a partial file
        return "250 Message accepted for delivery"


def header(msg, name):
    value = msg[name]
    return None if value is None else str(value)


class BoundController(Controller):
    """A Controller serving on a socket bound beforehand (so port 0 works: aiosmtpd's own
    readiness check connects to self.port, which must be the real one)."""

    def __init__(self, handler, sock):
        super().__init__(handler, hostname="127.0.0.1", port=sock.getsockname()[1])
        self._sock = sock

    def _create_server(self):
        return self.loop.create_server(self._factory_invoker, sock=self._sock, ssl=self.ssl_context)


def main():
    port, directory = int(sys.argv[1]), sys.argv[2]
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(64)
    port = sock.getsockname()[1]
    controller = BoundController(Sink(directory), sock)
    # start() returns once the server answers (aiosmtpd connects to it itself).
    controller.start()
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    with open(os.path.join(directory, "ready"), "w") as f:
        f.write(str(port))
    done.wait()
    controller.stop()


if __name__ == "__main__":
    main()
