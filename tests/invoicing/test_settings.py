"""The invoicing side's own settings: read from the environment, or given to the runtime."""

from __future__ import annotations

from pathlib import Path

import pytest

from actions.invoicing import INVOICING_SETTINGS, MAIL, SIGNING, invoicing_settings
from connector.registry import default_registry
from connector.runtime import build_services
from connector.settings import Settings
from invoicing.mailer import MailSettings
from invoicing.settings import DEFAULT_STANDARDS, InvoicingSettings, SettingsError, standards_root


def test_an_empty_environment_gives_the_defaults():
    assert InvoicingSettings.from_env({}) == InvoicingSettings()
    assert InvoicingSettings() == InvoicingSettings(
        facturae_p12=None,
        facturae_p12_password=None,
        smtp_host=None,
        smtp_port=587,
        smtp_user=None,
        smtp_password=None,
        smtp_starttls=True,
        mail_from=None,
        verifactu_url=None,
        verifactu_cert=None,
        verifactu_key=None,
        verifactu_mode="no_verifactu",
        sif_producer_name=None,
        sif_producer_nif=None,
        sif_installation=None,
    )


def test_every_variable_is_read():
    settings = InvoicingSettings.from_env(
        {
            "PUENTE_FACTURAE_P12": "/etc/puente/firma.p12",
            "PUENTE_FACTURAE_P12_PASSWORD": "clave",
            "PUENTE_SMTP_HOST": "smtp.example.com",
            "PUENTE_SMTP_PORT": "2525",
            "PUENTE_SMTP_USER": "u",
            "PUENTE_SMTP_PASSWORD": "p",
            "PUENTE_SMTP_STARTTLS": "no",
            "PUENTE_MAIL_FROM": "f@example.com",
            "PUENTE_VERIFACTU_URL": "https://aeat.example/verifactu",
            "PUENTE_VERIFACTU_CERT": "/etc/puente/aeat.crt",
            "PUENTE_VERIFACTU_KEY": "/etc/puente/aeat.key",
            "PUENTE_VERIFACTU_MODE": "VeriFactu",
            "PUENTE_SIF_PRODUCER_NAME": "Integraciones SL",
            "PUENTE_SIF_PRODUCER_NIF": "b65410011",
            "PUENTE_SIF_INSTALLATION": "7",
        }
    )

    assert settings == InvoicingSettings(
        facturae_p12=Path("/etc/puente/firma.p12"),
        facturae_p12_password="clave",
        smtp_host="smtp.example.com",
        smtp_port=2525,
        smtp_user="u",
        smtp_password="p",
        smtp_starttls=False,
        mail_from="f@example.com",
        verifactu_url="https://aeat.example/verifactu",
        verifactu_cert=Path("/etc/puente/aeat.crt"),
        verifactu_key=Path("/etc/puente/aeat.key"),
        verifactu_mode="verifactu",
        sif_producer_name="Integraciones SL",
        sif_producer_nif="B65410011",
        sif_installation="7",
    )
    assert settings.with_(smtp_port=25).smtp_port == 25 and settings.smtp_port == 2525


def test_empty_values_count_as_unset():
    empty = {"PUENTE_FACTURAE_P12": "", "PUENTE_SMTP_HOST": "", "PUENTE_VERIFACTU_URL": ""}

    assert InvoicingSettings.from_env(empty) == InvoicingSettings()


def test_the_standards_folder_can_be_named():
    assert standards_root({}) == DEFAULT_STANDARDS
    assert standards_root({"PUENTE_STANDARDS_DIR": "/srv/standards"}) == Path("/srv/standards")


def test_the_engine_settings_know_nothing_of_invoicing(tmp_path):
    settings = Settings.from_env({"PUENTE_SECRET_KEY": "x", "PUENTE_INSTANCE_DIR": str(tmp_path)})

    assert not any(
        name.startswith(("smtp_", "mail_", "facturae_", "verifactu_"))
        for name in settings.__dataclass_fields__
    )


def engine_settings(tmp_path: Path) -> Settings:
    return Settings(database_url="sqlite://", redis_url=None, secret_key="x", instance_dir=tmp_path)


def test_without_given_settings_the_runtime_reads_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PUENTE_SMTP_HOST", "smtp.example.com")
    monkeypatch.setenv("PUENTE_MAIL_FROM", "f@example.com")

    services = build_services(default_registry(), engine_settings(tmp_path))

    assert invoicing_settings(services) == InvoicingSettings(
        smtp_host="smtp.example.com", mail_from="f@example.com"
    )
    mail = services.get(MAIL)
    assert mail is not None and (mail.host, mail.sender) == ("smtp.example.com", "f@example.com")
    assert services.get(SIGNING) is None


def test_given_settings_win_over_the_environment_and_mail_is_built_from_them(tmp_path, monkeypatch):
    monkeypatch.setenv("PUENTE_SMTP_HOST", "smtp.example.com")
    given = InvoicingSettings(smtp_host="127.0.0.1", smtp_port=2525, smtp_starttls=False)

    services = build_services(
        default_registry(), engine_settings(tmp_path), {INVOICING_SETTINGS: given}
    )

    assert invoicing_settings(services) is given
    assert services.get(MAIL) == MailSettings(host="127.0.0.1", port=2525, starttls=False)


def test_no_smtp_host_means_no_mail_service(tmp_path):
    services = build_services(
        default_registry(), engine_settings(tmp_path), {INVOICING_SETTINGS: InvoicingSettings()}
    )

    assert services.get(MAIL) is None


def test_a_given_service_wins_over_what_the_installer_provides(tmp_path):
    configured = InvoicingSettings(smtp_host="smtp.example.com", facturae_p12=tmp_path / "none")
    own_mail = MailSettings(host="127.0.0.1", port=2525)

    services = build_services(
        default_registry(),
        engine_settings(tmp_path),
        {INVOICING_SETTINGS: configured, MAIL: own_mail, SIGNING: None},
    )

    assert services.get(MAIL) is own_mail
    assert services.get(SIGNING) is None  # the missing certificate is never read


@pytest.mark.parametrize(
    ("environ", "said"),
    [
        ({"PUENTE_VERIFACTU_MODE": "maybe"}, "no es un modo"),
        ({"PUENTE_VERIFACTU_MODE": "verifactu"}, "necesita PUENTE_VERIFACTU_URL"),
        ({"PUENTE_SIF_PRODUCER_NAME": "Integraciones SL"}, "PUENTE_SIF_PRODUCER_NIF"),
        (
            {"PUENTE_VERIFACTU_MODE": "verifactu", "PUENTE_VERIFACTU_URL": "https://x.example/"},
            "quién produjo este sistema",
        ),
    ],
)
def test_a_mode_that_cannot_work_is_refused_saying_how_to_fix_it(environ, said):
    with pytest.raises(SettingsError) as refused:
        InvoicingSettings.from_env(environ)
    assert said in refused.value.args[0].es


def test_the_qr_host_follows_where_records_go():
    url = "https://www1.agenciatributaria.gob.es/wlpl/TIKE-CONT/ws/SistemaFacturacion/VerifactuSOAP"
    production = InvoicingSettings(verifactu_mode="verifactu", verifactu_url=url)
    tests = production.with_(
        verifactu_url=url.replace("www1.agenciatributaria.gob.es", "prewww1.aeat.es")
    )
    assert (production.sends_records, production.aeat_tests) == (True, False)
    assert (tests.sends_records, tests.aeat_tests) == (True, True)
    assert (InvoicingSettings().sends_records, InvoicingSettings().aeat_tests) == (False, False)
