"""Interface text in Spanish (default) and English; choose with ?lang=, a cookie or the browser."""

from __future__ import annotations

from typing import Any

from flask import Flask, g, request
from flask.wrappers import Response

from web import i18n_accounts, i18n_builder, i18n_catalog, i18n_print, i18n_reports

LANGUAGES = ("es", "en")
COOKIE = "puente_lang"

_CORE: dict[str, dict[str, str]] = {
    "es": {
        "flows": "Flujos",
        "runs": "Ejecuciones",
        "invoices": "Facturas",
        "sign_in": "Entrar",
        "sign_out": "Salir",
        "name": "Nombre",
        "trigger": "Disparador",
        "webhook_url": "URL del webhook",
        "status": "Estado",
        "enabled": "Activo",
        "disabled": "Inactivo",
        "version": "Versión",
        "steps": "Pasos",
        "no_flows": "Aún no hay flujos.",
        "no_runs": "Aún no hay ejecuciones. Envía un evento al webhook para ver la primera.",
        "no_invoices": "Aún no hay facturas.",
        "run": "Ejecución",
        "flow": "Flujo",
        "deal": "Oportunidad",
        "attempts": "Intentos",
        "created": "Creada",
        "started": "Inicio",
        "finished": "Fin",
        "duration": "Duración",
        "error": "Error",
        "input": "Entrada",
        "output": "Salida",
        "trigger_data": "Datos del disparador",
        "step": "Paso",
        "action": "Acción",
        "all": "Todas",
        "filter": "Filtrar",
        "invoice": "Factura",
        "draft_invoice": "Factura en borrador",
        "number": "Número",
        "customer": "Cliente",
        "tax_id": "NIF",
        "date": "Fecha",
        "total": "Total",
        "base": "Base imponible",
        "tax": "IVA",
        "rate": "Tipo",
        "description": "Descripción",
        "quantity": "Cantidad",
        "unit_price": "Precio unitario",
        "discount": "Dto.",
        "amount": "Importe",
        "address": "Dirección",
        "source": "Origen",
        "reference": "Referencia",
        "notes": "Observaciones",
        "draft_notice": "Borrador: sin número ni fecha de expedición hasta que se emita.",
        "previous": "Anteriores",
        "next": "Siguientes",
        "status_queued": "En cola",
        "status_running": "En curso",
        "status_succeeded": "Correcta",
        "status_failed": "Fallida",
        "status_stopped": "Detenida",
        "status_dead": "Sin reintentos",
        "flow_help": "El flujo en JSON: disparador, pasos y sus correspondencias. Las "
        'expresiones van como {"$expr": "trigger.customer.tax_id"}.',
        "flow_check": "Comprobar",
        "flow_save": "Guardar versión",
        "flow_dry_run": "Probar sin efectos",
        "flow_enable": "Activar",
        "flow_disable": "Desactivar",
        "flow_problems": "Comprobación",
        "flow_no_problems": "Sin problemas: se puede activar.",
        "flow_preview": "Vista previa con los datos de ejemplo",
        "flow_functions": "Funciones disponibles",
        "flow_saved": "Versión guardada.",
        "flow_saved_draft": "Guardado como borrador: tiene problemas y no se puede activar.",
        "flow_save_refused": "No se ha guardado: el flujo está activo y esta versión tiene "
        "problemas (los tienes debajo). Corrígelos, o desactiva el flujo para guardarla como "
        "borrador.",
        "flow_enable_refused": "El flujo sigue inactivo: tiene problemas (los tienes en "
        "Comprobación). Corrígelos y guarda antes de activarlo.",
        "flow_dry_run_refused": "No se puede probar: el flujo tiene problemas (los tienes en "
        "Comprobación).",
        "flow_enabled": "Flujo activado.",
        "flow_versions": "Versiones",
        "flow_versions_help": "Cada vez que se guarda el flujo queda una versión; las "
        "ejecuciones ya empezadas siguen con la suya. Restaurar guarda esa versión como la más "
        "nueva.",
        "flow_version_current": "En uso",
        "flow_version_changes": "Cambios respecto a la anterior",
        "flow_version_same": "Sin cambios respecto a la anterior.",
        "flow_restore": "Restaurar esta versión",
        "flow_restore_confirm": "¿Guardar esta versión como la más nueva? Las próximas "
        "ejecuciones la usarán.",
        "flow_restored": "Versión {version} restaurada como la más nueva.",
        "flow_disabled": "Flujo desactivado.",
        "func_coalesce": "el primer valor que no esté vacío",
        "func_lookup": "traduce un código con una tabla del flujo",
        "func_amounts": "importes exactos (texto), redondeo mitad hacia arriba",
        "func_dates": "fechas: el día en Madrid, zonas horarias, formato, sumar días",
        "func_text": "textos y NIF normalizado",
        "status_retry": "Reintento",
        "status_lost": "Perdida",
        "replay": "Reintentar",
        "replay_help": "Vuelve a ejecutarse desde el primer paso sin terminar; los pasos "
        "hechos no se repiten. Puedes corregir aquí los datos del disparador.",
        "replay_ok": "Ejecución en cola de nuevo.",
        "replay_many_ok": "{count} ejecuciones en cola de nuevo (espaciadas, para no saturar a "
        "nadie).",
        "replay_none_chosen": "Marca primero las ejecuciones fallidas que quieres relanzar.",
        "replay_refused": "No se puede relanzar: solo se relanzan ejecuciones terminadas "
        "(fallidas, sin reintentos o detenidas) de un flujo que aún existe.",
        "replay_invalid": "No se ha relanzado: los datos corregidos no son válidos:",
        "replay_selected": "Relanzar las marcadas",
        "replay_selected_help": "Marca las fallidas en la lista.",
        "replay_select": "Marcar para relanzar la ejecución",
        "runs_since": "Desde",
        "refused_link": "Entregas rechazadas",
        "refused_title": "Entregas rechazadas",
        "refused_help": "Lo que llegó a tus direcciones de webhook y no se aceptó. Ninguna "
        "llegó a ejecutar un flujo: corrige la causa y pide al remitente que la envíe de nuevo.",
        "refused_none": "Ninguna entrega rechazada.",
        "refused_where": "Dirección",
        "refused_reason": "Motivo",
        "refused_data": "Datos recibidos",
        "refused_invalid_signature": "La firma no es válida o ha caducado: comprueba que el "
        "secreto configurado en el remitente (o en el CRM) es el de esta conexión, y que su "
        "reloj está en hora.",
        "refused_invalid_payload": "El contenido no se pudo leer: no tiene el formato que "
        "envía este CRM.",
        "refused_invalid_json": "El contenido no es JSON válido.",
        "refused_invalid_deal": "Los datos no tienen el formato esperado:",
        "runs_until": "Hasta",
        "replay_bad_json": "Los datos corregidos no son un objeto JSON válido.",
        "history": "Historial de intentos",
        "search_runs": "Oportunidad, factura o NIF",
        "queue_wait": "Espera en cola",
        "class_stopped": "Detenida por un filtro",
        "status_draft": "Borrador",
        "status_issued": "Emitida",
        "status_paid": "Cobrada",
        "status_cancelled": "Anulada",
        "class_validation": "Datos no válidos",
        "class_configuration": "Configuración",
        "class_transient": "Temporal (se reintenta)",
        "class_internal": "Error interno",
        "field": "Campo",
        "problem": "Problema",
        "language": "Idioma",
        "not_found": "No encontrado",
        "view_invoice": "Ver factura",
        "invoice_of_run": "Factura creada",
        "total_base": "Total base imponible",
        "total_tax": "Total IVA",
        "total_invoice": "Total factura",
        "settings": "Ajustes",
        "pipeline": "Oportunidades",
        "pipeline_help": "El embudo de ventas de Puente. Al pasar una oportunidad a «Ganada» se "
        "ponen en marcha los flujos de oportunidad ganada: se crea la factura en borrador.",
        "pipeline_move": "Etapa",
        "pipeline_apply": "Cambiar",
        "pipeline_won": "Oportunidad ganada: su factura en borrador se está creando.",
        "pipeline_moved": "Oportunidad movida.",
        "pipeline_bad_stage": "Esa etapa no existe: elige una de la lista.",
        "pipeline_cannot_win": "No se puede marcar como ganada: añade antes las líneas de lo "
        "vendido.",
        "issuer": "Nuestra empresa (emisor)",
        "issuer_help": "Los datos fiscales con los que se emiten las facturas. "
        "Necesarios antes de emitir la primera.",
        "street": "Dirección",
        "postal_code": "Código postal",
        "city": "Población",
        "province": "Provincia",
        "country": "País",
        "iban": "IBAN para cobros",
        "sif_producer_tax_id": "NIF del productor del sistema (si no es el emisor)",
        "sif_producer_name": "Nombre del productor del sistema",
        "sif_installation": "Número de instalación",
        "save": "Guardar",
        "series": "Series",
        "purpose_ordinary": "Ordinarias",
        "purpose_rectifying": "Rectificativas",
        "purpose_simplified": "Simplificadas",
        "settings_ok": "Datos guardados.",
        "issue": "Emitir factura",
        "issue_help": "Al emitirla recibe el siguiente número de la serie, la fecha de hoy "
        "y su registro VERI*FACTU. Una factura emitida ya no se puede modificar.",
        "issued_ok": "Factura emitida.",
        "no_issuer": "Configura antes los datos de tu empresa en Ajustes.",
        "qr_legend": "Factura verificable en la sede electrónica de la AEAT",
        "huella": "Huella",
        "payments": "Cobros",
        "no_payments": "Sin cobros registrados.",
        "record_payment": "Registrar cobro",
        "paid_on": "Fecha de cobro",
        "paid_on_invalid": "La fecha de cobro no es válida.",
        "method": "Forma de pago",
        "paid": "Cobrado",
        "outstanding": "Pendiente",
        "payment_ok": "Cobro registrado.",
        "issue_date": "Fecha de expedición",
        "send": "Enviar por correo",
        "send_help": "Se envía con el PDF y el XML Facturae adjuntos.",
        "send_to": "Para (por defecto, el correo del cliente)",
        "sent_ok": "Factura enviada.",
        "emails": "Envíos",
        "cancel_invoice": "Anular factura",
        "cancel_help": "Solo para una factura emitida por error y sin cobros: se registra "
        "su anulación en VERI*FACTU. Para corregir una venta real, rectifícala.",
        "cancelled_ok": "Factura anulada.",
        "rectify": "Rectificar (sustitución)",
        "rectify_help": "Crea un borrador de factura rectificativa con las mismas líneas, "
        "para corregirlo y emitirlo.",
        "rectify_ok": "Borrador de rectificativa creado: revísalo y emítelo.",
        "rectifies": "Rectifica la factura",
        "reason": "Motivo",
        "rectify_type": "Tipo",
    },
    "en": {
        "flows": "Flows",
        "runs": "Runs",
        "invoices": "Invoices",
        "sign_in": "Sign in",
        "sign_out": "Sign out",
        "name": "Name",
        "trigger": "Trigger",
        "webhook_url": "Webhook URL",
        "status": "Status",
        "enabled": "Enabled",
        "disabled": "Disabled",
        "version": "Version",
        "steps": "Steps",
        "no_flows": "No flows yet.",
        "no_runs": "No runs yet. Send an event to the webhook to see the first one.",
        "no_invoices": "No invoices yet.",
        "run": "Run",
        "flow": "Flow",
        "deal": "Deal",
        "attempts": "Attempts",
        "created": "Created",
        "started": "Started",
        "finished": "Finished",
        "duration": "Duration",
        "error": "Error",
        "input": "Input",
        "output": "Output",
        "trigger_data": "Trigger data",
        "step": "Step",
        "action": "Action",
        "all": "All",
        "filter": "Filter",
        "invoice": "Invoice",
        "draft_invoice": "Draft invoice",
        "number": "Number",
        "customer": "Customer",
        "tax_id": "Tax id",
        "date": "Date",
        "total": "Total",
        "base": "Taxable base",
        "tax": "VAT",
        "rate": "Rate",
        "description": "Description",
        "quantity": "Quantity",
        "unit_price": "Unit price",
        "discount": "Disc.",
        "amount": "Amount",
        "address": "Address",
        "source": "Source",
        "reference": "Reference",
        "notes": "Notes",
        "draft_notice": "Draft: no number or issue date until it is issued.",
        "previous": "Previous",
        "next": "Next",
        "status_queued": "Queued",
        "status_running": "Running",
        "status_succeeded": "Succeeded",
        "status_failed": "Failed",
        "status_stopped": "Stopped",
        "status_dead": "Out of retries",
        "flow_help": "The flow as JSON: trigger, steps and their mappings. Expressions are "
        'written as {"$expr": "trigger.customer.tax_id"}.',
        "flow_check": "Check",
        "flow_save": "Save version",
        "flow_dry_run": "Test without effects",
        "flow_enable": "Enable",
        "flow_disable": "Disable",
        "flow_problems": "Check",
        "flow_no_problems": "No problems: it can be enabled.",
        "flow_preview": "Preview on the sample data",
        "flow_functions": "Functions you can use",
        "flow_saved": "Version saved.",
        "flow_saved_draft": "Saved as a draft: it has problems and cannot be enabled.",
        "flow_save_refused": "Not saved: the flow is enabled and this version has problems "
        "(listed below). Fix them, or disable the flow to save it as a draft.",
        "flow_enable_refused": "The flow stays disabled: it has problems (listed under Check). "
        "Fix them and save before enabling it.",
        "flow_dry_run_refused": "It cannot be tried: the flow has problems (listed under Check).",
        "flow_enabled": "Flow enabled.",
        "flow_versions": "Versions",
        "flow_versions_help": "Each save of the flow keeps a version; runs already started go "
        "on with theirs. Restoring saves that version as the newest.",
        "flow_version_current": "In use",
        "flow_version_changes": "Changes from the one before",
        "flow_version_same": "No changes from the one before.",
        "flow_restore": "Restore this version",
        "flow_restore_confirm": "Save this version as the newest? The next runs use it.",
        "flow_restored": "Version {version} restored as the newest.",
        "flow_disabled": "Flow disabled.",
        "func_coalesce": "the first value that is not empty",
        "func_lookup": "translates a code with one of the flow's tables",
        "func_amounts": "exact amounts (text), rounding half up",
        "func_dates": "dates: the day in Madrid, time zones, format, adding days",
        "func_text": "texts and normalized tax ids",
        "status_retry": "Retried",
        "status_lost": "Lost",
        "replay": "Run again",
        "replay_help": "It runs again from its first unfinished step; finished steps are not "
        "repeated. You may correct the trigger data here.",
        "replay_ok": "Run queued again.",
        "replay_many_ok": "{count} runs queued again (spaced out, so as to flood no one).",
        "replay_none_chosen": "First tick the failed runs you want to replay.",
        "replay_refused": "It cannot be replayed: only finished runs (failed, dead or stopped) "
        "of a flow that still exists are.",
        "replay_invalid": "Not replayed: the corrected data is not valid:",
        "replay_selected": "Replay the ticked ones",
        "replay_selected_help": "Tick the failed ones in the list.",
        "replay_select": "Tick to replay run",
        "runs_since": "From",
        "refused_link": "Refused deliveries",
        "refused_title": "Refused deliveries",
        "refused_help": "What reached your webhook addresses and was not accepted. None of it "
        "ran a flow: fix the cause and ask the sender to send it again.",
        "refused_none": "No refused deliveries.",
        "refused_where": "Address",
        "refused_reason": "Reason",
        "refused_data": "Data received",
        "refused_invalid_signature": "The signature is wrong or stale: check that the secret "
        "set at the sender (or in the CRM) is this connection's, and that its clock is right.",
        "refused_invalid_payload": "The content could not be read: it is not in the format "
        "this CRM sends.",
        "refused_invalid_json": "The content is not valid JSON.",
        "refused_invalid_deal": "The data is not in the expected format:",
        "runs_until": "To",
        "replay_bad_json": "The corrected data is not a valid JSON object.",
        "history": "Attempt history",
        "search_runs": "Deal, invoice or tax id",
        "queue_wait": "Queue wait",
        "class_stopped": "Stopped by a filter",
        "status_draft": "Draft",
        "status_issued": "Issued",
        "status_paid": "Paid",
        "status_cancelled": "Cancelled",
        "class_validation": "Invalid data",
        "class_configuration": "Configuration",
        "class_transient": "Temporary (will retry)",
        "class_internal": "Internal error",
        "field": "Field",
        "problem": "Problem",
        "language": "Language",
        "not_found": "Not found",
        "view_invoice": "View invoice",
        "invoice_of_run": "Invoice created",
        "total_base": "Total taxable base",
        "total_tax": "Total VAT",
        "total_invoice": "Invoice total",
        "settings": "Settings",
        "pipeline": "Opportunities",
        "pipeline_help": "Puente's sales pipeline. Moving an opportunity to “Won” starts the "
        "deal-won flows: its draft invoice is created.",
        "pipeline_move": "Stage",
        "pipeline_apply": "Move",
        "pipeline_won": "Opportunity won: its draft invoice is being created.",
        "pipeline_moved": "Opportunity moved.",
        "pipeline_bad_stage": "That stage does not exist: choose one from the list.",
        "pipeline_cannot_win": "It cannot be marked won: add the lines of what was sold first.",
        "issuer": "Our company (issuer)",
        "issuer_help": "The fiscal data invoices are issued with. Needed before the first one.",
        "street": "Street",
        "postal_code": "Postal code",
        "city": "City",
        "province": "Province",
        "country": "Country",
        "iban": "IBAN for payments",
        "sif_producer_tax_id": "Tax id of the system's producer (if not the issuer)",
        "sif_producer_name": "Name of the system's producer",
        "sif_installation": "Installation number",
        "save": "Save",
        "series": "Series",
        "purpose_ordinary": "Ordinary",
        "purpose_rectifying": "Rectifying",
        "purpose_simplified": "Simplified",
        "settings_ok": "Saved.",
        "issue": "Issue invoice",
        "issue_help": "Issuing gives it the series' next number, today's date and its "
        "VERI*FACTU record. An issued invoice can no longer change.",
        "issued_ok": "Invoice issued.",
        "no_issuer": "Set up your company's data in Settings first.",
        "qr_legend": "Invoice verifiable at the AEAT's electronic office",
        "huella": "Hash",
        "payments": "Payments",
        "no_payments": "No payments recorded.",
        "record_payment": "Record payment",
        "paid_on": "Date paid",
        "paid_on_invalid": "The payment date is not valid.",
        "method": "Method",
        "paid": "Paid",
        "outstanding": "Outstanding",
        "payment_ok": "Payment recorded.",
        "issue_date": "Issue date",
        "send": "Send by email",
        "send_help": "Sent with the PDF and the Facturae XML attached.",
        "send_to": "To (default: the customer's email)",
        "sent_ok": "Invoice sent.",
        "emails": "Emails",
        "cancel_invoice": "Cancel invoice",
        "cancel_help": "Only for an invoice issued in error with no payments: its cancellation "
        "is recorded in VERI*FACTU. To correct a real sale, rectify it.",
        "cancelled_ok": "Invoice cancelled.",
        "rectify": "Rectify (substitution)",
        "rectify_help": "Creates a draft rectifying invoice with the same lines, to correct "
        "and issue.",
        "rectify_ok": "Rectifying draft created: review and issue it.",
        "rectifies": "Rectifies invoice",
        "reason": "Reason",
        "rectify_type": "Type",
    },
}


def _merged(*catalogs: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """One catalog from the core's and the page modules'; a key defined twice is a bug."""
    merged: dict[str, dict[str, str]] = {lang: {} for lang in LANGUAGES}
    for catalog in catalogs:
        for lang, messages in catalog.items():
            twice = set(messages) & set(merged[lang])
            if twice:
                raise RuntimeError(f"interface text {sorted(twice)} ({lang}) is defined twice")
            merged[lang].update(messages)
    return merged


MESSAGES = _merged(
    _CORE,
    i18n_print.MESSAGES,
    i18n_reports.MESSAGES,
    i18n_catalog.MESSAGES,
    i18n_accounts.MESSAGES,
    i18n_builder.MESSAGES,
)


def translate(key: str, lang: str | None = None) -> str:
    lang = lang or str(getattr(g, "lang", "es"))
    return MESSAGES.get(lang, MESSAGES["es"]).get(key) or MESSAGES["es"].get(key, key)


def _choose() -> str:
    asked = request.args.get("lang")
    if asked in LANGUAGES:
        return asked
    cookie = request.cookies.get(COOKIE)
    if cookie in LANGUAGES:
        return cookie
    return request.accept_languages.best_match(LANGUAGES, default="es") or "es"


def init_app(app: Flask) -> None:
    @app.before_request
    def pick_language() -> None:
        g.lang = _choose()

    @app.after_request
    def remember_language(response: Response) -> Response:
        if request.args.get("lang") in LANGUAGES:
            response.set_cookie(
                COOKIE, request.args["lang"], max_age=365 * 86400, samesite="Lax", httponly=True
            )
        return response

    @app.context_processor
    def inject() -> dict[str, Any]:
        return {"t": translate, "lang": getattr(g, "lang", "es"), "languages": LANGUAGES}
