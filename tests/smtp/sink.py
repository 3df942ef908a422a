"""An SMTP sink on loopback for the notification tests (tests/it/notify.rs), built on aiosmtpd.

Usage: python sink.py PORT DIR

Every accepted message is written to DIR/<n>.json, decoded the way a mail client would (Python's email
package with the default policy): envelope sender and recipients, the decoded Subject, the text body, and the
raw headers (to check their encoding). Recipients starting with `reject` are refused with 550 (a permanent
failure) and those starting with `busy` with 451 (a transient one), so the tests can exercise both paths.
"""

import email
import email.policy
import json
import os
import signal
import sys
import threading

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("reject"):
            return "550 5.1.1 No such mailbox"
        if address.startswith("busy"):
            return "451 4.3.0 Mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = message.get_body(preferencelist=("plain",))
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "subject": str(message["subject"]),
            "raw_subject": raw_header(envelope.content, b"subject"),
            "content_type": message.get_content_type(),
            "charset": body.get_content_charset() if body is not None else None,
            "content_language": message.get("content-language"),
            "body": body.get_content() if body is not None else None,
        }
        with self.lock:
            self.count += 1
            name = os.path.join(self.directory, f"{self.count:04d}.json")
        # Written then renamed, so a reader never sees half a file.
        with open(name + ".tmp", "w", encoding="utf-8") as out:
            json.dump(record, out, ensure_ascii=False)
        os.rename(name + ".tmp", name)
        return "250 Message accepted"


def raw_header(content, name):
    """The header as it travelled (folded lines joined), before any decoding."""
    head = content.split(b"\r\n\r\n", 1)[0].replace(b"\r\n ", b" ").replace(b"\r\n\t", b" ")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(name + b":"):
            return line.split(b":", 1)[1].strip().decode("ascii", "replace")
    return None


def main():
    port, directory = int(sys.argv[1]), sys.argv[2]
    controller = Controller(Sink(directory), hostname="127.0.0.1", port=port)
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
