"""A real SMTP server (aiosmtpd) on 127.0.0.1 for tests that send mail."""

from __future__ import annotations

import email
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from invoicing.mailer import MailSettings
from invoicing.settings import InvoicingSettings
from tests.processes import free_port

SENDER = "facturas@puente.example"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    authenticated: bool

    def parsed(self) -> EmailMessage:
        message = email.message_from_bytes(self.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        return message


@dataclass
class Inbox:
    """aiosmtpd handler: keeps what it accepts; refuses the addresses in `refuse`."""

    messages: list[Received] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)  # address → SMTP answer

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append(
            Received(
                envelope.mail_from, list(envelope.rcpt_tos), envelope.content, session.authenticated
            )
        )
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    inbox: Inbox
    port: int

    def settings(self, **changes: Any) -> MailSettings:
        values: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": self.port,
            "starttls": False,
            "sender": SENDER,
            "timeout": 5.0,
        }
        values.update(changes)
        return MailSettings(**values)

    def invoicing_settings(self) -> InvoicingSettings:
        """Invoicing settings that mail through this server (an app's, a runtime's)."""
        return InvoicingSettings(
            smtp_host="127.0.0.1", smtp_port=self.port, smtp_starttls=False, mail_from=SENDER
        )


@contextmanager
def smtp_server(**smtp_options: Any) -> Iterator[SmtpServer]:
    """aiosmtpd on a free port of 127.0.0.1, stopped on exit; options go to its SMTP class."""
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, ready_timeout=5, **smtp_options)
    controller.start()
    try:
        yield SmtpServer(inbox, port)
    finally:
        controller.stop()
