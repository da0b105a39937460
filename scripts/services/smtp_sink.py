"""A real SMTP server for the SMTP provider tests (aiosmtpd from Debian's python3-aiosmtpd).

Every message it takes is written to DIR as <n>.eml (the DATA byte for byte) next to <n>.json
(envelope sender and recipients). A
recipient whose local part starts with "reject" is refused with 550 (permanent), one starting
with "defer" with 451 (transient), as a real server would for a dead mailbox or a full disk. A
message to one starting with "slow" is stored and then answered only after SLOW_SECS, like a
server that took it but whose answer is lost or late.

usage: python3 smtp_sink.py PORT DIR
"""

import asyncio
import itertools
import json
import os
import sys

from aiosmtpd.smtp import SMTP

SLOW_SECS = 5


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.counter = itertools.count(1)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local.startswith("reject"):
            return "550 5.1.1 mailbox unavailable"
        if local.startswith("defer"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        n = next(self.counter)
        base = os.path.join(self.directory, str(n))
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content)
        with open(base + ".json", "w") as f:
            json.dump({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos}, f)
        # The .eml appears last, whole: a reader that sees it can read both files.
        os.rename(base + ".eml.tmp", base + ".eml")
        if any(a.split("@", 1)[0].lower().startswith("slow") for a in envelope.rcpt_tos):
            await asyncio.sleep(SLOW_SECS)
        return "250 2.0.0 queued as %d" % n


async def main(port, directory):
    loop = asyncio.get_running_loop()
    handler = Sink(directory)
    server = await loop.create_server(lambda: SMTP(handler, decode_data=False), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
