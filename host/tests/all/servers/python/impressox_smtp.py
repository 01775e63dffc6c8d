"""An SMTP sink for the integration tests (docs/design/notify.md section 7.3).

Run as ``python -m aiosmtpd -n -l 127.0.0.1:PORT -c impressox_smtp.FaultyMailbox MAILDIR``
with this directory on PYTHONPATH. Messages are stored in MAILDIR (aiosmtpd's Maildir handler,
which moves each file into ``new/`` atomically), except that the recipient's local part asks
for a failure, so tests can make a real SMTP client see real SMTP errors:

- ``reject-550@...``: RCPT answered ``550 5.1.1 refused by test server`` (permanent);
- ``reject-451@...``: RCPT answered ``451 4.3.0 refused by test server`` (transient);
  any other ``reject-<code>@...`` likewise, with a 5.x.x or 4.x.x enhanced code;
- ``slow-<secs>@...``: RCPT waits that many seconds (fractions allowed), then accepts,
  so a client's timeout can be exercised.
"""

import asyncio

from aiosmtpd.handlers import Mailbox


class FaultyMailbox(Mailbox):
    """aiosmtpd's Maildir handler, refusing or stalling recipients on demand."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local.startswith("reject-"):
            code = local[len("reject-"):]
            enhanced = "5.1.1" if code.startswith("5") else "4.3.0"
            return f"{code} {enhanced} refused by test server"
        if local.startswith("slow-"):
            try:
                await asyncio.sleep(float(local[len("slow-"):]))
            except ValueError:
                pass
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"
