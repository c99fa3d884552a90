"""Interface text of the flow builder (web.ui.builder, static/builder.js): every key starts
with "builder_"; the page hands the script these texts without the prefix."""

from __future__ import annotations

from collections.abc import Callable

PREFIX = "builder_"

_TEXTS = {
    "title_new": ("Nuevo flujo", "New flow"),
    "designer": ("Diseñador", "Designer"),
    "advanced_json": ("JSON (avanzado)", "JSON (advanced)"),
    "not_a_flow": (
        "No ha llegado ningún flujo: elige un disparador y al menos un paso, y vuelve a guardar.",
        "No flow arrived: choose a trigger and at least one step, and save again.",
    ),
    "needs_script": (
        "El diseñador necesita JavaScript; sin él, usa la vista JSON.",
        "The designer needs JavaScript; without it, use the JSON view.",
    ),
    "flow_name": ("Nombre del flujo", "Flow name"),
    "trigger": ("Disparador", "Trigger"),
    "when": ("Cuando…", "When…"),
    "choose_trigger": ("Elige qué pone en marcha el flujo", "Choose what starts the flow"),
    "trigger_settings": ("Ajustes del disparador", "Trigger settings"),
    "connection": ("Conexión", "Connection"),
    "choose_connection": ("Elige la conexión", "Choose the connection"),
    "no_connection": (
        "No hay conexiones de este tipo: añádela primero",
        "No connection of this type: add it first",
    ),
    "step": ("Paso", "Step"),
    "step_name": ("Nombre del paso (opcional)", "Step name (optional)"),
    "move_up": ("Subir el paso", "Move the step up"),
    "move_down": ("Bajar el paso", "Move the step down"),
    "remove_step": ("Quitar", "Remove"),
    "test_step": ("Probar este paso", "Test this step"),
    "add_step": ("Añadir paso", "Add step"),
    "choose_action": ("Elige una acción", "Choose an action"),
    "add_filter": ("Añadir filtro", "Add filter"),
    "filter": ("Filtro: seguir solo si…", "Filter: go on only if…"),
    "filter_condition": ("Condición", "Condition"),
    "filter_explain": (
        "Qué se anota si el filtro para el flujo",
        "What the log says when the filter stops the flow",
    ),
    "whole_input": ("Todos los datos, de un campo", "All the inputs, from one field"),
    "use_form": ("Rellenar campo a campo", "Fill in field by field"),
    "take_whole": ("Tomarlo entero de un campo", "Take it whole from a field"),
    "from_field": ("Tomar de un campo", "Take from a field"),
    "type_value": ("Escribir un valor fijo", "Type a fixed value"),
    "from_a_field": ("de un campo", "from a field"),
    "expr_placeholder": (
        "elige un campo a la derecha, o escribe p. ej. trigger.customer.tax_id",
        "pick a field on the right, or type e.g. trigger.customer.tax_id",
    ),
    "default_value": ("por defecto", "default"),
    "yes": ("Sí", "Yes"),
    "no": ("No", "No"),
    "preview": (
        "Vista previa: lo que recibiría este paso con los datos de ejemplo",
        "Preview: what this step would get on the sample data",
    ),
    "problems": ("Comprobación", "Check"),
    "no_problems": ("Sin problemas: se puede activar.", "No problems: it can be enabled."),
    "not_checked": ("Elige un disparador para empezar.", "Choose a trigger to start."),
    "check": ("Comprobar", "Check"),
    "test_flow": ("Probar el flujo", "Test the flow"),
    "save": ("Guardar", "Save"),
    "testing": ("Probando con los datos de ejemplo…", "Testing on the sample data…"),
    "trial": ("Prueba sin efectos", "Trial without effects"),
    "input_output": ("Entrada y salida", "Input and output"),
    "picker": ("Campos disponibles", "Available fields"),
    "picker_help": (
        "Haz clic en un campo del formulario y luego en un dato de aquí para usarlo.",
        "Click a field of the form, then a value here to use it.",
    ),
    "picker_into": ("Se insertará en:", "It goes into:"),
    "trigger_data": ("Datos del disparador (ejemplo)", "Trigger data (sample)"),
    "insert": ("Usar", "Use"),
    "status_succeeded": ("Correcta", "Succeeded"),
    "status_failed": ("Fallida", "Failed"),
    "status_stopped": ("Detenida por un filtro", "Stopped by a filter"),
    "status_skipped": ("No ejecutado en la prueba", "Not performed in a trial"),
    "status_refused": ("No se puede probar", "Cannot be tested"),
    "new_flow": ("Nuevo flujo", "New flow"),
    "lookups": ("Tablas de correspondencia", "Lookup tables"),
    "lookups_help": (
        "Para traducir códigos del CRM a los tuyos: en un campo «de un campo», escribe "
        "lookup('tabla', trigger.campo) y se usará el valor de la fila cuya clave coincida.",
        'To translate the CRM\'s codes into yours: in a field "from a field", write '
        "lookup('table', trigger.field) and the value of the row whose key matches is used.",
    ),
    "lookup_name": ("Nombre de la tabla", "Table name"),
    "lookup_key": ("Clave (lo que llega)", "Key (what arrives)"),
    "lookup_value": ("Valor (lo que se usa)", "Value (what is used)"),
    "lookup_add_row": ("Añadir fila", "Add row"),
    "lookup_new_key": ("clave", "key"),
    "lookup_remove": ("Quitar la tabla", "Remove the table"),
    "lookup_add": ("Añadir tabla", "Add table"),
    "load_real": ("Cargar un ejemplo real", "Load a real example"),
    "real_loaded": ("Ejemplo real recibido el", "Real example received on"),
    "no_real_sample": (
        "Aún no ha llegado nada de este disparador: envía una oportunidad desde el CRM (o "
        "usa «Probar el flujo» con el ejemplo) y vuelve a cargarlo.",
        "Nothing has arrived from this trigger yet: send a deal from the CRM (or test with the "
        "example) and load it again.",
    ),
    "webhook_secret_once": (
        "Secreto del webhook de este flujo (se muestra una vez; cópialo ahora):",
        "This flow's webhook secret (shown once; copy it now):",
    ),
}

MESSAGES: dict[str, dict[str, str]] = {
    "es": {PREFIX + key: es for key, (es, _en) in _TEXTS.items()},
    "en": {PREFIX + key: en for key, (_es, en) in _TEXTS.items()},
}


def script_texts(translate: Callable[[str], str]) -> dict[str, str]:
    """The builder's texts in the page's language, keyed without the prefix."""
    return {key: translate(PREFIX + key) for key in _TEXTS}
