"""The messages loadkit sends: Faker-made once, stamped per message.

Faker costs tens of microseconds per call, far too much for a send loop, so a
`MessageFactory` makes a pool of messages when it starts (From and To display
names, Subject, body paragraphs, MIME parts) and `build()` only stamps the
headers that must differ per message onto one of them::

    Date: Thu, 26 Nov 2026 00:15:01 GMT
    Message-ID: <1f2e3d4c.mx1-4242.0000000042@loadkit.test>
    X-Loadkit-Trace: run=1f2e3d4c; src=mx1-4242; seq=0000000042; t=1795652101.123456

Stamping is one ``bytes %`` format, one table lookup and one concatenation:
no Faker, no `email` package and no random draw in the send loop, whatever
the profile. The stamp is always the first three lines and has the same
length in every message, so the sink reads the trace header back from the
start of the header block with `parse_trace` to measure end-to-end delivery
time and to find lost or duplicated mail.

Sizes are exact, as with Postfix's ``smtp-source -l``: ``payload_size`` is the
number of bytes after the blank line that ends the headers, CRLF counted as 2.
The body is 7-bit text wrapped at 76 characters, every line CRLF-terminated;
its last line is cut to fit (a cut that ends on a space ends with a "."
instead). The one size that cannot end in CRLF is 1: that body is a single
letter, and the SMTP client's end-of-data CRLF ends the line on the wire.
With the default profile the header block has the same length in every
message of a factory (fixed width sequence and time, equal-length names, a
Subject fitted to a fixed width), so `MessageFactory.message_size` is the
exact size of every message.

A `MailProfile` makes the pool look like real mail. It is one line of
``NAME=VALUE`` settings, each optional (the whole grammar, the ``realistic``
table and the MIME kinds are in `loadkit.messages._profile`)::

    size=lognormal:20k:1.0 | size=mix:realistic | size=mix:1k:20,4k-16k:80 | size=fixed:5k
    mime=attachments:0.2,html:0.3,utf8:0.1,smtputf8:0.05    (plain text is the rest)
    recipients=1:80,2:15,5:5
    domains=example.com:60,example.net:25,*:15               (* = 100 generated domains)

    factory = MessageFactory(seed=7, profile="size=mix:realistic mime=attachments:0.2")
    message, recipients = factory.build(), factory.recipients()

Every body still has its exact drawn size; `MessageFactory.message_sizes`
gives each built message's length, `kinds` its MIME kind. The pool holds
enough messages for the shares to hold exactly over one turn, and messages
are sent in its (shuffled) order. `recipients()` draws a message's envelope
recipients by weight, a few table lookups per recipient. A message with an
8-bit body needs BODY=8BITMIME and one with UTF-8 headers needs SMTPUTF8:
`needs_8bitmime`, `needs_smtputf8` (per message) and the factory's
attributes of the same names (any message of its pool) say so.

Nothing here dot-stuffs: the SMTP client does that on the wire. No generated
line starts with "." anyway.

Errors: bad factory arguments raise ValueError; bad profile settings raise
`MessageSettingsError` (a `loadkit.errors.UsageError`, and a ValueError).
"""

from loadkit.messages._factory import (
    MAX_HEADER_LINE,
    MessageFactory,
    default_source_tag,
    needs_8bitmime,
    needs_smtputf8,
)
from loadkit.messages._profile import (
    KINDS,
    SIZE_TABLES,
    DomainMix,
    FixedSize,
    LognormalSize,
    MailProfile,
    MessageSettingsError,
    MimeMix,
    RecipientCounts,
    SizeTable,
    Spread,
    parse_domains,
    parse_mime,
    parse_recipients,
    parse_size,
)
from loadkit.messages._text import (
    BODY_WIDTH,
    FAKER_LOCALE,
    SUBJECT_WIDTH,
    TEXT_PER_MESSAGE,
)
from loadkit.messages._trace import (
    MAX_SEQUENCE,
    SEQUENCE_DIGITS,
    TRACE_HEADER,
    Trace,
    parse_trace,
)

__all__ = [
    "BODY_WIDTH",
    "FAKER_LOCALE",
    "KINDS",
    "MAX_HEADER_LINE",
    "MAX_SEQUENCE",
    "SEQUENCE_DIGITS",
    "SIZE_TABLES",
    "SUBJECT_WIDTH",
    "TEXT_PER_MESSAGE",
    "TRACE_HEADER",
    "DomainMix",
    "FixedSize",
    "LognormalSize",
    "MailProfile",
    "MessageFactory",
    "MessageSettingsError",
    "MimeMix",
    "RecipientCounts",
    "SizeTable",
    "Spread",
    "Trace",
    "default_source_tag",
    "needs_8bitmime",
    "needs_smtputf8",
    "parse_domains",
    "parse_mime",
    "parse_recipients",
    "parse_size",
    "parse_trace",
]
