"""Alerts to the operator: a finding told by email (SMTP, from the settings) and/or a webhook (a JSON POST), with
its case, level, table, worker, cause and the command that shows more. Each finding goes out once (the catalog
remembers what was delivered); a transport that fails is tried again at the next check."""

from __future__ import annotations

import json
import smtplib
import urllib.request
from dataclasses import asdict
from email.message import EmailMessage

from loader_assets.catalog.findings import Finding
from loader_assets.settings import Alerts

TIMEOUT = 10.0
TITLES = {"run": "a load or validation run failed", "gate": "a gate failed", "stall": "a statement stalled",
          "parked": "a notice is parked"}  # fmt: skip


def subject(finding: Finding) -> str:
    where = "/".join(part for part in (finding.case, finding.table) if part) or "loader_assets"
    return f"[loader-assets] {where}: {TITLES.get(finding.kind, finding.kind)}"


def body(finding: Finding) -> str:
    lines = [f"{TITLES.get(finding.kind, finding.kind).capitalize()}.", ""]
    for label, value in (("case", finding.case), ("level", finding.level), ("table", finding.table),
                         ("worker", finding.worker), ("cause", finding.cause), ("more", finding.more)):  # fmt: skip
        if value not in (None, ""):
            lines.append(f"{label}: {value}")
    return "\n".join(lines) + "\n"


def deliver(finding: Finding, settings: Alerts) -> list[str]:
    """Send the finding by every configured transport; returns the failures (empty: delivered)."""
    failures = []
    if settings.smtp_host and settings.mail_to:
        try:
            _mail(finding, settings)
        except (OSError, smtplib.SMTPException) as error:
            failures.append(f"SMTP {settings.smtp_host}:{settings.smtp_port}: {error}")
    if settings.webhook:
        try:
            _post(finding, settings.webhook)
        except OSError as error:
            failures.append(f"webhook {settings.webhook}: {error}")
    return failures


def _mail(finding: Finding, settings: Alerts) -> None:
    message = EmailMessage()
    message["Subject"], message["From"], message["To"] = (
        subject(finding),
        settings.mail_from,
        ", ".join(settings.mail_to),
    )
    message.set_content(body(finding))
    with smtplib.SMTP(settings.smtp_host or "", settings.smtp_port, timeout=TIMEOUT) as smtp:
        if settings.smtp_tls:
            smtp.starttls()
        if settings.smtp_user:
            smtp.login(settings.smtp_user, settings.smtp_password)
        smtp.send_message(message)


def _post(finding: Finding, url: str) -> None:
    payload = {"subject": subject(finding), **asdict(finding)}
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        response.read()
