// The flow builder: a flow document built with forms, no JSON needed.
// Reads the catalog (triggers, actions with their input schemas and sample data) from the
// server, generates each step's form from its action's JSON Schema, lets people pick fields
// from the trigger's and earlier steps' sample data, and asks the server to check the flow as
// it changes (problems in the reader's language, and each step's inputs on the sample).
(function () {
  "use strict";
  const root = document.getElementById("builder");
  if (!root) return;
  const T = JSON.parse(root.dataset.texts);
  const csrf = root.dataset.csrf;
  const form = document.getElementById(root.dataset.form);
  const readOnly = root.dataset.readonly === "1";
  let doc = JSON.parse(root.dataset.document || "null") || { name: "", trigger: { key: "" }, steps: [] };
  let catalog = null;
  let focused = null; // {step: index, path: [...keys]} of the field picks go to
  let report = { errors: [], preview: {} };
  let timer = null;
  let real = null; // {sample, received_at}: the trigger's latest real item, once loaded

  const EXPR = "$expr";
  const isExpr = (v) => v !== null && typeof v === "object" && !Array.isArray(v) && EXPR in v;
  const el = (tag, attrs, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const child of children.flat()) if (child) node.append(child);
    return node;
  };
  const title = (schema, key) => (catalog.lang === "es" ? schema["x-title-es"] : null) || schema.title || key;
  const help = (schema) => (catalog.lang === "es" ? schema["x-description-es"] : schema.description) || "";
  const trigger = () => catalog.triggers.find((t) => t.key === doc.trigger.key);
  const action = (key) => catalog.actions.find((a) => a.key === key);
  const types = (schema) => [].concat(schema.type || (schema.enum ? "enum" : "string"));

  function getIn(obj, keys) {
    return keys.reduce((o, k) => (o === null || o === undefined ? undefined : o[k]), obj);
  }
  function setIn(obj, keys, value) {
    let node = obj;
    keys.slice(0, -1).forEach((k) => {
      if (node[k] === null || typeof node[k] !== "object" || isExpr(node[k])) node[k] = {};
      node = node[k];
    });
    const last = keys[keys.length - 1];
    if (value === undefined) delete node[last];
    else node[last] = value;
  }

  // --- rendering ------------------------------------------------------------------------
  function render() {
    const main = el("div", { class: "builder-main" },
      nameBlock(), triggerBlock(), ...doc.steps.map(stepBlock), addBlock(), lookupsBlock(), problemsBlock(), actionsBlock());
    const side = el("aside", { class: "builder-picker", "aria-label": T.picker }, pickerBlock());
    root.replaceChildren(el("div", { class: "builder" }, main, side));
  }

  function nameBlock() {
    return el("div", { class: "card" },
      el("label", { class: "field" }, el("span", { text: T.flow_name + " *" }),
        el("input", { type: "text", value: doc.name || "", size: 60, maxlength: 120, required: true,
          "data-path": "name", oninput: (e) => { doc.name = e.target.value; changed(false); } })));
  }

  function grouped(items, placeholder) {
    const select = el("select", {}, el("option", { value: "", text: placeholder }));
    const apps = {};
    items.forEach((item) => { (apps[item.app.name] = apps[item.app.name] || []).push(item); });
    Object.keys(apps).sort().forEach((app) => {
      select.append(el("optgroup", { label: app },
        apps[app].map((item) => el("option", { value: item.key, text: item.title }))));
    });
    return select;
  }

  function connectionSelect(provider, value, onchange, path) {
    const mine = catalog.connections.filter((c) => c.type === provider);
    const select = el("select", { "data-path": path, onchange: (e) => onchange(e.target.value || undefined) },
      el("option", { value: "", text: mine.length ? T.choose_connection : T.no_connection }),
      mine.map((c) => el("option", { value: c.name, text: c.name, selected: c.name === value })));
    return el("label", { class: "field" }, el("span", { text: T.connection + " *" }), select);
  }

  function triggerBlock() {
    const select = grouped(catalog.triggers, T.choose_trigger);
    select.value = doc.trigger.key || "";
    select.setAttribute("data-path", "trigger.key");
    select.addEventListener("change", (e) => {
      doc.trigger = { key: e.target.value };
      real = null;
      changed(true);
    });
    const t = trigger();
    const card = el("section", { class: "card", "aria-label": T.trigger },
      el("h2", { text: "1. " + T.trigger }),
      el("label", { class: "field" }, el("span", { text: T.when + " *" }), select));
    if (t && t.provider) {
      card.append(connectionSelect(t.provider, doc.trigger.connection,
        (v) => { setIn(doc, ["trigger", "connection"], v); changed(true); }, "trigger.connection"));
    }
    if (t && t.config) {
      doc.trigger.config = doc.trigger.config || {};
      card.append(el("fieldset", {}, el("legend", { text: T.trigger_settings }),
        objectFields(t.config, doc.trigger.config, ["trigger", "config"], null, true)));
    }
    return card;
  }

  function stepBlock(step, index) {
    const card = el("section", { class: "card step", "data-step": index });
    const heading = el("h2", {}, `${index + 2}. `);
    const tools = el("div", { class: "step-tools" },
      el("button", { type: "button", class: "link", text: "↑", title: T.move_up, "aria-label": T.move_up,
        disabled: index === 0, onclick: () => move(index, -1) }),
      el("button", { type: "button", class: "link", text: "↓", title: T.move_down, "aria-label": T.move_down,
        disabled: index === doc.steps.length - 1, onclick: () => move(index, 1) }),
      el("button", { type: "button", class: "link", text: T.remove_step,
        onclick: () => { doc.steps.splice(index, 1); changed(true); } }),
      step.filter ? null : el("button", { type: "button", text: T.test_step, onclick: () => tryFlow(step.id) }));
    if (step.filter) {
      heading.append(T.filter);
      card.append(heading, tools,
        exprField(T.filter_condition, step.filter[EXPR] || "", `steps[${index}].filter`,
          (v) => { step.filter = { [EXPR]: v }; changed(false); }, index, ["steps", index, "filter"]),
        el("label", { class: "field" }, el("span", { text: T.filter_explain + " *" }),
          el("input", { type: "text", size: 60, value: step.explain || "", "data-path": `steps[${index}].explain`,
            oninput: (e) => { step.explain = e.target.value; changed(false); } })));
      return card;
    }
    const a = action(step.action);
    heading.append(a ? a.title : step.action);
    card.append(heading, tools,
      el("label", { class: "field" }, el("span", { text: T.step_name }),
        el("input", { type: "text", size: 60, value: step.name || "", maxlength: 120,
          oninput: (e) => { step.name = e.target.value || undefined; changed(false); } })));
    if (!a) return card;
    if (a.provider) {
      card.append(connectionSelect(a.provider, step.connection,
        (v) => { step.connection = v; changed(true); }, `steps[${index}].connection`));
    }
    if (isExpr(step.input)) {
      card.append(exprField(T.whole_input, step.input[EXPR], `steps[${index}].input`,
        (v) => { step.input = { [EXPR]: v }; changed(false); }, index, ["steps", index, "input"]),
        el("button", { type: "button", class: "link", text: T.use_form,
          onclick: () => { step.input = {}; changed(true); } }));
    } else {
      step.input = step.input || {};
      card.append(objectFields(a.input, step.input, ["steps", index, "input"], index, false));
    }
    const preview = report.preview[step.id];
    if (preview !== undefined) {
      card.append(el("details", { class: "preview" }, el("summary", { text: T.preview }),
        el("pre", { tabindex: "0", text: JSON.stringify(preview, null, 2) })));
    }
    return card;
  }

  // A form for an object schema: one field per property (required ones marked).
  function objectFields(schema, value, keys, stepIndex, literalOnly) {
    const required = new Set(schema.required || []);
    const box = el("div", { class: "fields" });
    Object.entries(schema.properties || {}).forEach(([name, prop]) => {
      box.append(field(name, prop, required.has(name), value, keys.concat(name), stepIndex, literalOnly));
    });
    return box;
  }

  function pathText(keys) {
    return keys.map((k, i) => (typeof k === "number" ? `[${k}]` : (i ? "." : "") + k)).join("");
  }

  function field(name, schema, required, parent, keys, stepIndex, literalOnly) {
    const path = pathText(keys);
    const current = getIn(doc, keys);
    const label = title(schema, name) + (required ? " *" : "");
    const kinds = types(schema);
    const isObject = kinds.includes("object") && schema.properties;
    const isArray = kinds.includes("array");
    const set = (v) => { setIn(doc, keys, v); changed(false); };
    const wrap = el("div", { class: "field-row", "data-field": path });
    const errors = report.errors.filter((e) => e.path === path);

    if (isObject && !isExpr(current)) {
      const fs = el("fieldset", {}, el("legend", { text: label }));
      if (help(schema)) fs.append(el("p", { class: "muted", text: help(schema) }));
      if (!literalOnly) {
        fs.append(el("button", { type: "button", class: "link", text: T.take_whole,
          onclick: () => { setIn(doc, keys, { [EXPR]: "" }); focused = { step: stepIndex, keys }; changed(true); } }));
      }
      fs.append(objectFields(schema, current || {}, keys, stepIndex, literalOnly));
      errors.forEach((e) => fs.append(el("p", { class: "field-error", role: "alert", text: e.message })));
      wrap.append(fs);
      return wrap;
    }
    if (isArray && Array.isArray(current)) { // a list typed as it is: edited as JSON text
      const id = "j-" + path.replace(/[^a-z0-9]+/gi, "-");
      const area = el("textarea", { id, rows: 6, cols: 60, "data-path": path, spellcheck: "false",
        onchange: (e) => { try { set(JSON.parse(e.target.value)); } catch (err) { e.target.setAttribute("aria-invalid", "true"); } } });
      area.value = JSON.stringify(current, null, 2);
      wrap.append(el("label", { class: "field", for: id }, el("span", { text: label + " (JSON)" }), area));
      errors.forEach((e) => wrap.append(el("p", { class: "field-error", role: "alert", text: e.message })));
      return wrap;
    }
    if (isExpr(current) || (isArray && !literalOnly)) {
      wrap.append(exprField(label, isExpr(current) ? current[EXPR] : "", path, (v) => set({ [EXPR]: v }),
        stepIndex, keys, schema));
      if (!isArray) {
        wrap.append(el("button", { type: "button", class: "link", text: T.type_value,
          onclick: () => { setIn(doc, keys, undefined); changed(true); } }));
      }
      errors.forEach((e) => wrap.append(el("p", { class: "field-error", role: "alert", text: e.message })));
      return wrap;
    }
    let input;
    const id = "f-" + path.replace(/[^a-z0-9]+/gi, "-");
    const enumValues = schema.enum || (schema.const !== undefined ? [schema.const] : null);
    if (enumValues) {
      input = el("select", { id, onchange: (e) => set(e.target.value === "" ? undefined : JSON.parse(e.target.value)) },
        el("option", { value: "", text: schema.default !== undefined ? `${T.default_value}: ${schema.default}` : "—" }),
        enumValues.map((v) => el("option", { value: JSON.stringify(v), text: String(v), selected: current === v })));
    } else if (kinds.includes("boolean") && !kinds.includes("string")) {
      input = el("select", { id, onchange: (e) => set(e.target.value === "" ? undefined : e.target.value === "true") },
        el("option", { value: "", text: "—" }),
        el("option", { value: "true", text: T.yes, selected: current === true }),
        el("option", { value: "false", text: T.no, selected: current === false }));
    } else {
      const numeric = !kinds.includes("string") && (kinds.includes("number") || kinds.includes("integer"));
      input = el("input", { id, type: "text", size: 50, value: current === undefined || current === null ? "" : String(current),
        placeholder: schema.default !== undefined ? String(schema.default) : (schema.examples ? String(schema.examples[0]) : ""),
        inputmode: numeric ? "decimal" : null,
        oninput: (e) => {
          const text = e.target.value;
          if (text === "") set(undefined);
          else if (numeric) set(toNumber(text));
          else set(text);
        } });
    }
    input.setAttribute("data-path", path);
    if (required) input.setAttribute("aria-required", "true");
    if (errors.length) input.setAttribute("aria-invalid", "true");
    input.addEventListener("focus", () => { focused = { step: stepIndex, keys }; markFocus(); });
    wrap.append(el("label", { class: "field", for: id }, el("span", { text: label }), input));
    if (!literalOnly) {
      wrap.append(el("button", { type: "button", class: "link", text: T.from_field,
        onclick: () => { setIn(doc, keys, { [EXPR]: "" }); focused = { step: stepIndex, keys }; changed(true); } }));
    }
    if (help(schema)) wrap.append(el("p", { class: "muted small", text: help(schema) }));
    errors.forEach((e) => wrap.append(el("p", { class: "field-error", role: "alert", text: e.message })));
    return wrap;
  }

  // Amounts as people type them in Spain: "1.500,50" → 1500.5 (and "1500.50" too).
  function toNumber(text) {
    const t = text.trim().replace(/\s/g, "");
    const normalized = /,\d{1,4}$/.test(t) || /^\d{1,3}(\.\d{3})+(,\d+)?$/.test(t) ? t.replace(/\./g, "").replace(",", ".") : t;
    const n = Number(normalized);
    return Number.isFinite(n) && normalized !== "" ? n : text;
  }

  function exprField(label, value, path, onchange, stepIndex, keys, schema) {
    const id = "x-" + path.replace(/[^a-z0-9]+/gi, "-");
    const input = el("input", { id, type: "text", size: 50, value, class: "expr", "data-path": path,
      placeholder: T.expr_placeholder, spellcheck: "false",
      oninput: (e) => onchange(e.target.value) });
    input.addEventListener("focus", () => { focused = { step: stepIndex, keys }; markFocus(); });
    if (report.errors.some((e) => e.path === path || e.path.startsWith(path + "."))) input.setAttribute("aria-invalid", "true");
    return el("label", { class: "field", for: id },
      el("span", {}, label, " ", el("span", { class: "badge", text: T.from_a_field })), input,
      schema && help(schema) ? el("p", { class: "muted small", text: help(schema) }) : null);
  }

  function markFocus() {
    const hint = root.querySelector(".picker-hint");
    if (hint) hint.textContent = focused && focused.step !== null ? T.picker_into + " " + where(pathText(focused.keys)) : T.picker_help;
  }

  function addBlock() {
    const select = grouped(catalog.actions, T.choose_action);
    select.setAttribute("aria-label", T.choose_action);
    return el("section", { class: "card" },
      el("h2", { text: T.add_step }),
      el("div", { class: "add-step" }, select,
        el("button", { type: "button", text: T.add_step, onclick: () => {
          if (!select.value) return;
          const key = select.value;
          doc.steps.push({ id: newId(key.split(".")[1]), action: key, input: {} });
          changed(true);
        } }),
        el("button", { type: "button", class: "link", text: T.add_filter, onclick: () => {
          doc.steps.push({ id: newId("filtro"), filter: { [EXPR]: "" }, explain: "" });
          changed(true);
        } })));
  }

  // Lookup tables (lookup('tabla', clave) in an expression): a name and its rows, as forms.
  function lookupsBlock() {
    const tables = doc.lookups || {};
    const box = el("section", { class: "card", "aria-label": T.lookups },
      el("h2", { text: T.lookups }), el("p", { class: "muted small", text: T.lookups_help }));
    Object.entries(tables).forEach(([name, rows], t) => {
      const entries = Object.entries(rows);
      const table = el("table", {}, el("caption", { text: `lookup('${name}', …)` }),
        el("thead", {}, el("tr", {}, el("th", { text: T.lookup_key }), el("th", { text: T.lookup_value }), el("th", {}))),
        el("tbody", {}, entries.map(([key, value], r) => el("tr", {},
          el("td", {}, el("input", { type: "text", value: key, "aria-label": `${T.lookup_key} ${r + 1}`,
            onchange: (e) => { renameRow(name, key, e.target.value); } })),
          el("td", {}, el("input", { type: "text", value: String(value), "aria-label": `${T.lookup_value} ${r + 1}`,
            oninput: (e) => { tables[name][key] = e.target.value; changed(false); } })),
          el("td", {}, el("button", { type: "button", class: "link", text: T.remove_step,
            onclick: () => { delete tables[name][key]; changed(true); } }))))));
      box.append(el("div", { class: "lookup", "data-path": `lookups.${name}` },
        el("label", { class: "field" }, el("span", { text: T.lookup_name }),
          el("input", { type: "text", value: name, "data-lookup": t,
            onchange: (e) => renameTable(name, e.target.value) })),
        table,
        el("button", { type: "button", class: "link", text: T.lookup_add_row, onclick: () => {
          let key = "", n = 1;
          while (key === "" || key in tables[name]) key = `${T.lookup_new_key}${n++}`;
          tables[name][key] = ""; changed(true);
        } }),
        el("button", { type: "button", class: "link", text: T.lookup_remove, onclick: () => {
          delete tables[name]; if (!Object.keys(tables).length) delete doc.lookups; changed(true);
        } })));
    });
    box.append(el("button", { type: "button", text: T.lookup_add, onclick: () => {
      doc.lookups = doc.lookups || {};
      let name = "tabla", n = 2;
      while (name in doc.lookups) name = `tabla_${n++}`;
      doc.lookups[name] = {};
      changed(true);
    } }));
    return box;
  }

  function renameTable(from, to) {
    const clean = to.trim().toLowerCase().replace(/[^a-z0-9_]/g, "_");
    if (!clean || clean === from || clean in doc.lookups) { render(); return; }
    const rebuilt = {};
    Object.entries(doc.lookups).forEach(([k, v]) => { rebuilt[k === from ? clean : k] = v; });
    doc.lookups = rebuilt;
    changed(true);
  }

  function renameRow(name, from, to) {
    const rows = doc.lookups[name];
    if (!to || to === from || to in rows) { render(); return; }
    const rebuilt = {};
    Object.entries(rows).forEach(([k, v]) => { rebuilt[k === from ? to : k] = v; });
    doc.lookups[name] = rebuilt;
    changed(true);
  }

  function newId(base) {
    const stem = base.replace(/[^a-z0-9_]/g, "_").slice(0, 30) || "paso";
    let id = stem, n = 2;
    while (doc.steps.some((s) => s.id === id)) id = `${stem}_${n++}`;
    return id;
  }

  function move(index, by) {
    const [step] = doc.steps.splice(index, 1);
    doc.steps.splice(index + by, 0, step);
    changed(true);
  }

  function problemsBlock() {
    const box = el("section", { class: "card", id: "builder-problems", "aria-live": "polite" },
      el("h2", { text: T.problems }));
    if (!report.errors.length) {
      box.append(el("p", { class: "notice", role: "status", text: report.checked ? T.no_problems : T.not_checked }));
    } else {
      box.append(el("ul", {}, report.errors.map((e) =>
        el("li", {}, el("a", { href: "#", onclick: (ev) => { ev.preventDefault(); focusPath(e.path); } }, where(e.path)), ": ", e.message))));
    }
    return box;
  }

  // "steps[1].input.customer.tax_id" → "Paso 3 › customer.tax_id", as people count steps.
  function where(path) {
    const m = /^steps\[(\d+)\]\.?(.*)$/.exec(path);
    if (!m) return path || T.flow_name;
    return `${T.step} ${Number(m[1]) + 2}` + (m[2] ? ` › ${m[2].replace(/^input\.?/, "")}` : "");
  }

  function focusPath(path) {
    let best = null;
    root.querySelectorAll("[data-path]").forEach((n) => {
      const p = n.getAttribute("data-path");
      if (path === p || path.startsWith(p + ".") || path.startsWith(p + "[")) {
        if (!best || p.length > best.getAttribute("data-path").length) best = n;
      }
    });
    if (best) best.focus();
  }

  function actionsBlock() {
    const box = el("div", { class: "builder-actions" },
      el("button", { type: "button", text: T.check, onclick: () => check() }),
      el("button", { type: "button", text: T.test_flow, onclick: () => tryFlow(null) }),
      readOnly ? null : el("button", { type: "button", class: "primary", text: T.save, onclick: save }));
    const out = el("div", { id: "builder-trial", "aria-live": "polite" });
    return el("div", {}, box, out);
  }

  // --- field picker ---------------------------------------------------------------------
  function pickerBlock() {
    const box = el("div", {}, el("h2", { text: T.picker }),
      el("p", { class: "muted picker-hint", text: T.picker_help }));
    const t = trigger();
    if (!t) return box;
    box.append(el("button", { type: "button", text: T.load_real, onclick: loadReal }));
    if (real) box.append(el("p", { class: "muted small", text: `${T.real_loaded} ${new Date(real.received_at).toLocaleString(catalog.lang)}` }));
    box.append(el("h3", { text: T.trigger_data }), tree(real ? real.sample : t.sample, "trigger"));
    doc.steps.forEach((step, i) => {
      if (step.filter) return;
      const a = action(step.action);
      if (a && a.sample && Object.keys(a.sample).length) {
        box.append(el("h3", { text: `${T.step} ${i + 2}: ${a.title}` }), tree(a.sample, `steps.${step.id}`));
      }
    });
    return box;
  }

  function tree(value, path) {
    const list = el("ul", { class: "tree" });
    const entries = Array.isArray(value) ? (value.length ? [[0, value[0]]] : []) : Object.entries(value || {});
    entries.forEach(([key, v]) => {
      const child = Array.isArray(value) ? `${path}[${key}]` : `${path}.${key}`;
      const label = Array.isArray(value) ? `[${key}]` : key;
      const leaf = v === null || typeof v !== "object";
      const pick = el("button", { type: "button", class: "pick", "data-expr": Array.isArray(value) ? `${path}` : child,
        title: T.insert + " " + child, onclick: () => pickPath(Array.isArray(value) ? path : child) },
        el("code", { text: label }), leaf ? el("span", { class: "muted", text: " " + String(v) }) : null);
      list.append(el("li", {}, pick, leaf ? null : tree(v, child)));
    });
    return list;
  }

  function pickPath(path) {
    if (!focused || focused.step === null) {
      root.querySelector(".picker-hint").textContent = T.picker_help;
      return;
    }
    setIn(doc, focused.keys, { [EXPR]: path });
    changed(true);
  }

  // --- talking to the server ------------------------------------------------------------
  const payload = () => JSON.parse(JSON.stringify(doc));

  function changed(rerender) {
    if (rerender) render();
    clearTimeout(timer);
    timer = setTimeout(check, 500);
  }

  async function post(url, body) {
    const answer = await fetch(url, { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf }, body: JSON.stringify(body) });
    return answer.json();
  }

  async function check() {
    if (!doc.trigger.key) { report = { errors: [], preview: {}, checked: false }; render(); return; }
    const result = await post(root.dataset.check, { document: payload(), sample: real && real.sample });
    report = { errors: result.errors || [], preview: result.preview || {}, checked: true };
    const active = document.activeElement && document.activeElement.getAttribute("data-path");
    const caret = document.activeElement && document.activeElement.selectionStart;
    render();
    if (active) {
      const again = root.querySelector(`[data-path="${CSS.escape(active)}"]`);
      if (again) { again.focus(); if (caret !== null && again.setSelectionRange) again.setSelectionRange(caret, caret); }
    }
  }

  async function tryFlow(until) {
    const out = document.getElementById("builder-trial");
    out.replaceChildren(el("p", { class: "muted", text: T.testing }));
    const result = await post(root.dataset.dryRun, { document: payload(), until, sample: real && real.sample });
    const items = (result.steps || []).map((st) => el("div", { class: "card" },
      el("strong", { text: `${st.id} · ${st.action}` }), " ",
      el("span", { class: `badge ${st.status}`, text: T["status_" + st.status] || st.status }),
      st.note ? el("p", { class: "muted", text: st.note }) : null,
      st.error ? el("p", { class: "field-error", text: st.error }) : null,
      el("details", {}, el("summary", { text: T.input_output }),
        el("pre", { tabindex: "0", text: JSON.stringify({ input: st.input, output: st.output }, null, 2) }))));
    const errors = (result.errors || []).map((e) => el("li", {}, `${where(e.path)}: ${e.message}`));
    out.replaceChildren(el("h2", {}, T.trial + ": ",
      el("span", { class: `badge ${result.status}`, text: T["status_" + result.status] || result.status })),
      errors.length ? el("ul", { class: "error" }, errors) : null, ...items);
  }

  async function loadReal() {
    const answer = await fetch(`${root.dataset.sample}?trigger=${encodeURIComponent(doc.trigger.key)}`,
      { credentials: "same-origin" });
    const body = await answer.json();
    if (!answer.ok) {
      root.querySelector(".picker-hint").textContent = body.error;
      return;
    }
    real = body;
    changed(true);
  }

  function save() {
    form.querySelector("input[name=document]").value = JSON.stringify(payload());
    form.submit();
  }

  fetch(root.dataset.catalog, { credentials: "same-origin" })
    .then((r) => r.json())
    .then((data) => { catalog = data; render(); check(); });
})();
