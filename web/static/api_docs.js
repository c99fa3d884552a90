// Renders /api/v1/openapi.json as a browsable list: tags, operations, parameters, bodies,
// answers and the schemas they use. Plain DOM (textContent only): nothing from the document
// is ever read as HTML.
(function () {
  "use strict";
  const main = document.getElementById("docs");
  const el = (tag, attrs, ...children) => {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => { if (k === "class") node.className = v; else node.setAttribute(k, v); });
    children.flat().forEach((c) => node.append(c instanceof Node ? c : document.createTextNode(String(c))));
    return node;
  };
  const json = (value) => el("pre", {}, JSON.stringify(value, null, 2));

  function schemaOf(spec, schema) {
    // The schema with its component references listed below it, one level deep.
    const refs = new Set();
    (function walk(node) {
      if (node && typeof node === "object") {
        if (typeof node.$ref === "string") refs.add(node.$ref.replace("#/components/schemas/", ""));
        Object.values(node).forEach(walk);
      }
    })(schema);
    const box = el("div", {}, json(schema));
    refs.forEach((name) => {
      const d = el("details", {}, el("summary", {}, name));
      d.addEventListener("toggle", () => { if (d.open && d.childNodes.length === 1) d.append(schemaOf(spec, spec.components.schemas[name] || {})); });
      box.append(d);
    });
    return box;
  }

  function operation(spec, method, path, op) {
    const body = el("div", { class: "body" });
    if (op.description) body.append(el("p", {}, op.description));
    if (op.parameters && op.parameters.length) {
      body.append(el("h4", {}, "Parámetros / parameters"),
        el("table", {}, op.parameters.map((p) => el("tr", {},
          el("td", {}, el("code", {}, p.name)), el("td", {}, p.in), el("td", {}, p.required ? "obligatorio" : "opcional"),
          el("td", {}, JSON.stringify(p.schema)), el("td", {}, p.description || "")))));
    }
    if (op.requestBody) {
      body.append(el("h4", {}, "Cuerpo / request body"), schemaOf(spec, op.requestBody.content["application/json"].schema));
    }
    body.append(el("h4", {}, "Respuestas / responses"));
    Object.entries(op.responses).forEach(([status, answer]) => {
      const content = answer.content || {};
      const type = Object.keys(content)[0];
      const d = el("details", {}, el("summary", {}, `${status} — ${answer.description}${type && type !== "application/json" ? ` (${type})` : ""}`));
      if (type === "application/json") d.append(schemaOf(spec, content[type].schema));
      body.append(d);
    });
    const scope = op["x-scope"] ? `permiso: ${op["x-scope"]}` : "público";
    return el("details", { class: "op", "data-text": `${method} ${path} ${op.summary}`.toLowerCase() },
      el("summary", {}, el("span", { class: `method ${method}` }, method), el("span", { class: "path" }, path),
        el("span", {}, op.summary), el("span", { class: "scope" }, scope)),
      body);
  }

  fetch(main.dataset.spec).then((r) => r.json()).then((spec) => {
    main.textContent = "";
    const byTag = {};
    Object.entries(spec.paths).forEach(([path, methods]) => Object.entries(methods).forEach(([m, op]) => {
      (byTag[op.tags[0]] = byTag[op.tags[0]] || []).push(operation(spec, m.toUpperCase(), path, op));
    }));
    Object.keys(byTag).sort().forEach((tag) => main.append(el("section", {}, el("h2", {}, tag), byTag[tag])));
    document.getElementById("filter").addEventListener("input", (e) => {
      const q = e.target.value.toLowerCase();
      main.querySelectorAll("details.op").forEach((d) => { d.hidden = q && !d.dataset.text.includes(q); });
    });
  }).catch(() => { main.textContent = "No se pudo cargar la documentación (openapi.json). Recarga la página."; });
})();
