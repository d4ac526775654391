// The demo page of mock_server: a form made from a model's input schema, a prediction watched
// through its Server-Sent Events stream, a gallery kept in localStorage and every API call shown
// as curl. Plain ES2020, no build step, no external assets.
(() => {
  "use strict";

  const KEY = "fluxDemo.";
  const TERMINAL = new Set(["succeeded", "failed", "canceled", "aborted"]);
  // tqdm, as the official clients read it: ` 45%|████▌     | 13/28 [...]`
  const PROGRESS = /^\s*(\d+)%\s*\|.+?\|\s*(\d+)\/(\d+)/;
  const IMAGE_NAME = /image|img|photo|picture|mask/i;
  const DEFAULT_TOKEN = "r8_demo_token";
  const DEFAULT_MODEL = "black-forest-labs/flux-schnell";
  const MAX_HISTORY = 40;
  const MAX_CALLS = 40;
  const MAX_SHOWN = 8000; // characters of a response body shown in the API panel
  const POLL_MS = 1000;

  const $ = (id) => document.getElementById(id);
  const base = new URL(".", window.location.href);

  const state = {
    models: new Map(), // "owner/name" -> model object (from GET /models)
    schemas: new Map(), // "owner/name" -> model object with latest_version (GET /models/{o}/{n})
    fields: [], // [{name, schema, kind}] of the form on show
    uploads: new Set(), // pending upload promises
    runs: new Map(), // prediction id -> run (what the result panel and the gallery show)
    current: null, // the id on show
    loadSeq: 0,
  };

  // ------------------------------------------------------------------ storage
  const store = {
    get(key, fallback) {
      try {
        const raw = window.localStorage.getItem(KEY + key);
        return raw === null ? fallback : JSON.parse(raw);
      } catch {
        return fallback;
      }
    },
    set(key, value) {
      try {
        window.localStorage.setItem(KEY + key, JSON.stringify(value));
      } catch {
        // storage full or disabled: the page still works, without memory
      }
    },
  };

  const token = () => $("token").value.trim();
  const prefix = () => $("prefix").value;
  const api = (path) => new URL(prefix() + path, base).href;
  const historyKey = () => "history:" + token();
  const history = () => store.get(historyKey(), []);

  // ------------------------------------------------------------------ DOM helper
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "text") node.textContent = v;
      else if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c !== null && c !== undefined && c !== false) node.append(c);
    }
    return node;
  }

  // ------------------------------------------------------------------ API calls panel
  const quote = (s) => "'" + String(s).replace(/'/g, "'\\''") + "'";

  function curlFor(c) {
    const parts = [c.stream ? "curl -N" : "curl -s"];
    if (c.method !== "GET") parts.push("-X " + c.method);
    parts.push(quote(c.url));
    for (const [k, v] of Object.entries(c.headers)) parts.push("-H " + quote(`${k}: ${v}`));
    if (c.body !== undefined) parts.push("-d " + quote(c.body));
    for (const f of c.form || []) parts.push("-F " + quote(f));
    return parts.join(" \\\n  ");
  }

  async function copyText(text, button) {
    let ok = false;
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(text);
        ok = true;
      }
    } catch {
      ok = false;
    }
    if (!ok) {
      // Plain http on another host: the old way, through a selected text area.
      const area = el("textarea", { class: "offscreen", readonly: true });
      area.value = text;
      document.body.append(area);
      area.select();
      try {
        ok = document.execCommand("copy");
      } catch {
        ok = false;
      }
      area.remove();
    }
    button.textContent = ok ? "Copied" : "Select and copy";
    window.setTimeout(() => {
      button.textContent = "Copy";
    }, 1500);
  }

  function logCall(c) {
    const curl = curlFor(c);
    const summary = el("span", { class: "call-status", "data-testid": "call-status", text: "…" });
    const response = el("pre", { class: "response", "data-testid": "response" });
    const copy = el("button", { type: "button", class: "small", "data-testid": "copy", text: "Copy" });
    copy.addEventListener("click", () => copyText(curl, copy));
    const path = new URL(c.url).pathname;
    const item = el(
      "li",
      { class: "call", "data-testid": "api-call", "data-method": c.method, "data-path": path },
      el(
        "div",
        { class: "call-head" },
        el("span", { class: "method", text: c.method }),
        el("code", { class: "path", text: path }),
        summary,
        copy,
      ),
      el("pre", { class: "curl", "data-testid": "curl", text: curl }),
      el("details", { class: "response-box" }, el("summary", { text: "Response" }), response),
    );
    const list = $("api-log");
    list.prepend(item);
    while (list.children.length > MAX_CALLS) list.lastElementChild.remove();
    const started = performance.now();
    return {
      item,
      done(result) {
        const ms = Math.round(performance.now() - started);
        if (result.error) {
          item.dataset.status = "error";
          summary.textContent = `failed: ${result.error}`;
          summary.className = "call-status bad";
          return;
        }
        item.dataset.status = String(result.status);
        const events = result.events !== undefined ? ` · ${result.events} events` : "";
        summary.textContent = `${result.status}${events} · ${ms} ms`;
        summary.className = "call-status " + (result.status < 400 ? "ok" : "bad");
        if (result.text !== undefined) {
          let shown = result.text;
          try {
            shown = JSON.stringify(JSON.parse(result.text), null, 2);
          } catch {
            // not JSON: as it came
          }
          if (shown.length > MAX_SHOWN) shown = shown.slice(0, MAX_SHOWN) + "\n… (cut)";
          const head = `HTTP ${result.status}` + (result.type ? `\ncontent-type: ${result.type}` : "");
          response.textContent = head + "\n\n" + shown;
        }
      },
      open(text) {
        summary.textContent = text;
        response.textContent = "HTTP 200\ncontent-type: text/event-stream\n\n";
      },
      append(line) {
        // the stream's events, as they arrive
        if (response.textContent.length < MAX_SHOWN) response.textContent += line;
      },
    };
  }

  class ApiError extends Error {
    constructor(status, title, detail) {
      super(detail ? `${title}: ${detail}` : title);
      this.status = status;
      this.title = title;
      this.detail = detail;
    }
  }

  // One request: shown in the panel, JSON in and out, a problem+json answer thrown as ApiError.
  async function call(method, url, options = {}) {
    const headers = { Authorization: `Bearer ${token()}`, ...(options.headers || {}) };
    let body;
    if (options.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(options.json);
    }
    const entry = logCall({
      method,
      url,
      headers,
      body,
      form: options.form && options.form.describe,
    });
    let response;
    try {
      response = await fetch(url, {
        method,
        headers,
        body: options.form ? options.form.data : body,
      });
    } catch (err) {
      entry.done({ error: String(err.message || err) });
      throw new ApiError(0, "Network error", String(err.message || err));
    }
    const text = await response.text();
    entry.done({ status: response.status, text, type: response.headers.get("content-type") });
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!response.ok) {
      const title = (data && data.title) || `HTTP ${response.status}`;
      const detail = data && typeof data.detail === "string" ? data.detail.trim() : "";
      throw new ApiError(response.status, title, detail);
    }
    return data;
  }

  // ------------------------------------------------------------------ models and the form
  function showFormError(message) {
    const box = $("form-error");
    box.textContent = message || "";
    box.hidden = !message;
  }

  async function loadModels() {
    const seq = ++state.loadSeq;
    document.body.dataset.ready = "false";
    $("submit").disabled = true;
    showFormError("");
    let page;
    try {
      page = await call("GET", api("/models"));
    } catch (err) {
      if (seq !== state.loadSeq) return;
      showFormError(`Could not list the models (${err.message}). Check the token.`);
      $("inputs").replaceChildren(el("p", { class: "hint", text: "No model loaded." }));
      return;
    }
    if (seq !== state.loadSeq) return;
    state.models.clear();
    for (const m of page.results || []) state.models.set(`${m.owner}/${m.name}`, m);
    const wanted = new URLSearchParams(window.location.search).get("model");
    const candidates = [
      wanted && (wanted.includes("/") ? wanted : `black-forest-labs/${wanted}`),
      store.get("model", null),
      DEFAULT_MODEL,
    ];
    const chosen = candidates.find((c) => c && state.models.has(c)) || state.models.keys().next().value;
    const select = $("model");
    select.replaceChildren(
      ...[...state.models.keys()].map((ref) =>
        el("option", { value: ref, selected: ref === chosen, text: ref.split("/")[1] }),
      ),
    );
    if (chosen) await loadModel(chosen);
  }

  async function loadModel(ref) {
    const seq = ++state.loadSeq;
    document.body.dataset.ready = "false";
    $("submit").disabled = true;
    const [owner, name] = ref.split("/");
    let model = state.schemas.get(ref);
    if (!model) {
      try {
        model = await call("GET", api(`/models/${owner}/${name}`));
      } catch (err) {
        if (seq === state.loadSeq) showFormError(`Could not read ${ref} (${err.message}).`);
        return;
      }
      state.schemas.set(ref, model);
    }
    if (seq !== state.loadSeq) return;
    store.set("model", ref);
    $("model-description").textContent = model.description || "";
    buildForm(ref, model);
    showFormError("");
    $("submit").disabled = false;
    document.body.dataset.ready = "true";
  }

  // Cog puts enums in schemas of their own (`allOf: [{$ref}]`): merged into the property.
  function resolve(prop, schemas) {
    let out = { ...prop };
    for (const part of prop.allOf || []) {
      const ref = part.$ref && part.$ref.match(/^#\/components\/schemas\/(.+)$/);
      out = { ...(ref ? schemas[ref[1]] || {} : part), ...out };
    }
    delete out.allOf;
    return out;
  }

  function kindOf(name, s) {
    if (Array.isArray(s.enum)) return "enum";
    if (s.type === "boolean") return "boolean";
    if (s.type === "integer" || s.type === "number") return "number";
    if (s.type === "array" && s.items && s.items.format === "uri" && IMAGE_NAME.test(name)) {
      return "images";
    }
    if (s.type === "string" && s.format === "uri" && IMAGE_NAME.test(name)) return "image";
    if (name === "prompt") return "prompt";
    return "text";
  }

  function hintFor(s, kind) {
    const bits = [];
    if (s.description) bits.push(s.description.replace(/\s+$/, ""));
    if (kind === "number" && (s.minimum !== undefined || s.maximum !== undefined)) {
      bits.push(`${s.minimum ?? "…"} to ${s.maximum ?? "…"}`);
    }
    if (kind === "images" && s.maxItems) bits.push(`at most ${s.maxItems}`);
    return bits.join(" · ");
  }

  function buildForm(ref, model) {
    const schemas = model.latest_version.openapi_schema.components.schemas;
    const input = schemas.Input || { properties: {} };
    const required = new Set(input.required || []);
    const previous = $("in-prompt") ? $("in-prompt").value : "";
    state.fields = Object.entries(input.properties || {})
      .map(([name, prop]) => {
        const schema = resolve(prop, schemas);
        return { name, schema, kind: kindOf(name, schema), order: schema["x-order"] ?? 1e6 };
      })
      .sort((a, b) => a.order - b.order);
    const box = $("inputs");
    box.replaceChildren(...state.fields.map((f) => fieldFor(f, required.has(f.name))));
    box.dataset.model = ref;
    if (previous && $("in-prompt")) $("in-prompt").value = previous;
  }

  function fieldFor(f, required) {
    const { name, schema: s, kind } = f;
    const id = `in-${name}`;
    const label = el(
      "label",
      { for: id },
      name,
      required ? el("span", { class: "req", title: "required", text: " *" }) : null,
    );
    const hint = el("small", { class: "hint", text: hintFor(s, kind) });
    const common = { id, name, "data-testid": `input-${name}`, required };
    let control;
    const extra = [];
    switch (kind) {
      case "enum":
        control = el(
          "select",
          common,
          s.default === undefined && !required ? el("option", { value: "", text: "(not set)" }) : null,
          s.enum.map((v) => el("option", { value: String(v), selected: v === s.default, text: String(v) })),
        );
        break;
      case "boolean":
        control = el("input", { ...common, required: false, type: "checkbox", checked: s.default === true });
        return el(
          "div",
          { class: "field field-boolean", "data-field": name, "data-kind": kind },
          el("div", { class: "check" }, control, label),
          hint,
        );
      case "number":
        control = el("input", {
          ...common,
          type: "number",
          inputmode: s.type === "integer" ? "numeric" : "decimal",
          min: s.minimum,
          max: s.maximum,
          step: s.type === "integer" ? 1 : "any",
          value: s.default,
          placeholder: s.default === undefined ? "(not set)" : undefined,
        });
        break;
      case "prompt":
        control = el("textarea", { ...common, rows: 3, placeholder: "A photo of…" });
        break;
      case "image":
      case "images": {
        control =
          kind === "images"
            ? el("textarea", { ...common, rows: 2, placeholder: "Upload, or one URL per line" })
            : el("input", { ...common, type: "url", placeholder: "Upload, or an image URL" });
        const status = el("span", {
          class: "upload-status hint",
          id: `${id}-upload-status`,
          "data-testid": `upload-status-${name}`,
          "data-state": "idle",
          "aria-live": "polite",
        });
        const previews = el("div", { class: "previews", id: `${id}-previews` });
        const picker = el("input", {
          type: "file",
          id: `${id}-file`,
          "data-testid": `upload-${name}`,
          accept: "image/*",
          multiple: kind === "images",
          "aria-label": `Upload ${name}`,
        });
        picker.addEventListener("change", () => {
          const job = uploadFiles(kind, picker, control, status, previews);
          state.uploads.add(job);
          job.finally(() => state.uploads.delete(job));
        });
        extra.push(el("div", { class: "upload-row" }, picker, status), previews);
        break;
      }
      default:
        control = el("input", {
          ...common,
          type: s.format === "uri" ? "url" : "text",
          value: s.default,
        });
    }
    return el(
      "div",
      { class: `field field-${kind}`, "data-field": name, "data-kind": kind },
      label,
      control,
      ...extra,
      hint,
    );
  }

  // Each chosen file goes to POST /files (multipart, field `content`); its `urls.get` becomes
  // the input's value, as the official clients do with file inputs.
  async function uploadFiles(kind, picker, control, status, previews) {
    const chosen = [...picker.files];
    if (!chosen.length) return;
    status.dataset.state = "uploading";
    status.textContent = `Uploading ${chosen.length} file${chosen.length > 1 ? "s" : ""}…`;
    if (kind === "image") previews.replaceChildren();
    const urls = [];
    try {
      for (const file of chosen) {
        const data = new FormData();
        data.append("content", file, file.name);
        const type = file.type || "application/octet-stream";
        const uploaded = await call("POST", api("/files"), {
          form: { data, describe: [`content=@${file.name};type=${type}`] },
        });
        urls.push(uploaded.urls.get);
        const preview = el("img", { alt: file.name, title: uploaded.urls.get });
        preview.src = URL.createObjectURL(file);
        preview.addEventListener("load", () => URL.revokeObjectURL(preview.src), { once: true });
        previews.append(preview);
      }
    } catch (err) {
      status.dataset.state = "error";
      status.textContent = `Upload failed: ${err.message}`;
      throw err;
    }
    if (kind === "image") {
      control.value = urls[0];
    } else {
      const kept = control.value.split(/\s+/).filter(Boolean);
      control.value = [...kept, ...urls].join("\n");
    }
    status.dataset.state = "done";
    status.textContent = `Uploaded ${urls.length} file${urls.length > 1 ? "s" : ""}`;
  }

  function collectInput() {
    const input = {};
    for (const { name, schema: s, kind } of state.fields) {
      const c = $(`in-${name}`);
      if (!c) continue;
      let value;
      if (kind === "boolean") {
        value = c.checked;
        if (value === (s.default ?? false)) continue;
      } else if (kind === "number") {
        if (c.value.trim() === "") continue;
        value = Number(c.value);
        if (value === s.default) continue;
      } else if (kind === "enum") {
        if (c.value === "") continue;
        value = s.enum.find((v) => String(v) === c.value);
        if (value === s.default) continue;
      } else if (kind === "images") {
        value = c.value.split(/\s+/).filter(Boolean);
        if (!value.length) continue;
      } else {
        value = c.value;
        if (value.trim() === "" || value === s.default) continue;
      }
      input[name] = value;
    }
    return input;
  }

  // ------------------------------------------------------------------ predictions
  async function submit(event) {
    event.preventDefault();
    const form = $("run-form");
    if (!form.reportValidity()) return;
    showFormError("");
    const button = $("submit");
    button.disabled = true;
    $("form-status").textContent = "";
    try {
      if (state.uploads.size) {
        $("form-status").textContent = "Waiting for uploads…";
        const results = await Promise.allSettled([...state.uploads]);
        if (results.some((r) => r.status === "rejected")) {
          throw new Error("An upload failed: choose the file again.");
        }
      }
      const ref = $("model").value;
      const [owner, name] = ref.split("/");
      const headers = {};
      const scenario = $("scenario").value.trim();
      if (scenario) headers["X-Mock-Scenario"] = scenario;
      $("form-status").textContent = "Creating…";
      const p = await call("POST", api(`/models/${owner}/${name}/predictions`), {
        json: { input: collectInput() },
        headers,
      });
      $("form-status").textContent = "";
      const run = runFrom(p);
      remember(run);
      select(run.id);
      watch(run);
      // On a phone the result is below the form: bring it into view.
      const panel = $("result-panel").getBoundingClientRect();
      if (panel.top > window.innerHeight || panel.bottom < 0) $("result-panel").scrollIntoView();
    } catch (err) {
      $("form-status").textContent = "";
      showFormError(err.status ? `${err.status} ${err.message}` : err.message);
    } finally {
      button.disabled = false;
    }
  }

  const asList = (output) => (output == null ? [] : Array.isArray(output) ? output : [output]);

  function runFrom(p, old) {
    const run = old || { logs: "", progress: 0, outputs: [] };
    run.id = p.id;
    run.model = p.model;
    run.prompt = p.input && typeof p.input.prompt === "string" ? p.input.prompt : "";
    run.status = p.status;
    run.created_at = p.created_at;
    run.urls = p.urls || {};
    run.error = p.error || null;
    if (typeof p.logs === "string" && p.logs.length >= run.logs.length) {
      run.logs = p.logs;
      readProgress(run, p.logs.split("\n"));
    }
    if (p.status === "succeeded") {
      run.outputs = asList(p.output);
      run.progress = 100;
    }
    if (p.metrics && p.metrics.predict_time !== undefined) run.predict_time = p.metrics.predict_time;
    state.runs.set(run.id, run);
    return run;
  }

  function readProgress(run, lines) {
    for (const line of lines) {
      const m = PROGRESS.exec(line);
      if (m) {
        const total = Number(m[3]);
        run.progress = total > 0 ? Math.round((100 * Number(m[2])) / total) : Number(m[1]);
        run.steps = `${m[2]}/${m[3]}`;
      }
    }
  }

  // urls.stream: `logs` per log line, then `output` per file and `done`; or `error` then `done`.
  function watch(run) {
    if (!run.urls.stream || !window.EventSource) {
      poll(run);
      return;
    }
    const entry = logCall({
      method: "GET",
      url: run.urls.stream,
      headers: { Accept: "text/event-stream" },
      stream: true,
    });
    entry.open("streaming…");
    let events = 0;
    const source = new EventSource(run.urls.stream);
    run.source = source;
    const shown = (kind, e) => {
      events += 1;
      entry.append(`event: ${kind}\nid: ${e.lastEventId}\ndata: ${e.data}\n\n`);
    };
    source.addEventListener("logs", (e) => {
      shown("logs", e);
      const started = run.status === "starting";
      if (started) run.status = "processing";
      run.logs = run.logs ? `${run.logs}\n${e.data}` : e.data;
      readProgress(run, [e.data]);
      update(run, started);
    });
    source.addEventListener("output", (e) => {
      shown("output", e);
      if (!run.outputs.includes(e.data)) run.outputs.push(e.data);
      run.progress = 100;
      update(run, true);
    });
    source.addEventListener("error", (e) => {
      if (typeof e.data === "string") {
        // the server's own `error` event: {"detail": "..."}
        shown("error", e);
        try {
          run.error = JSON.parse(e.data).detail || e.data;
        } catch {
          run.error = e.data;
        }
        update(run, true);
        return;
      }
      // The connection dropped: EventSource reconnects by itself (with Last-Event-ID) unless it
      // gave up; then the prediction is polled instead.
      if (source.readyState === EventSource.CLOSED) {
        entry.done({ error: "the stream closed before `done`" });
        run.source = null;
        poll(run);
      }
    });
    source.addEventListener("done", (e) => {
      shown("done", e);
      source.close();
      entry.done({ status: 200, events });
      run.source = null;
      refresh(run);
    });
  }

  // GET urls.get: the prediction as stored (final status, output, error, metrics).
  async function refresh(run) {
    try {
      const p = await call("GET", run.urls.get);
      runFrom(p, run);
    } catch (err) {
      if (err.status === 404) {
        run.status = "gone";
        run.error = "The server no longer has this prediction (it was restarted or reset).";
      } else {
        run.error = run.error || err.message;
      }
    }
    update(run, true);
    return run;
  }

  async function poll(run) {
    await refresh(run);
    if (!TERMINAL.has(run.status) && run.status !== "gone") {
      window.setTimeout(() => poll(run), POLL_MS);
    }
  }

  async function cancel() {
    const run = state.runs.get(state.current);
    if (!run || !run.urls.cancel) return;
    try {
      const p = await call("POST", run.urls.cancel);
      runFrom(p, run);
      update(run, true);
    } catch (err) {
      showFormError(err.message);
    }
  }

  function update(run, saveIt) {
    if (saveIt || TERMINAL.has(run.status)) remember(run);
    if (run.id === state.current) renderResult();
  }

  // ------------------------------------------------------------------ result panel
  function renderResult() {
    const run = state.runs.get(state.current);
    $("result-empty").hidden = Boolean(run);
    $("result-body").hidden = !run;
    if (!run) return;
    const result = $("result");
    result.dataset.id = run.id;
    result.dataset.status = run.status;
    const badge = $("status");
    badge.textContent = run.status;
    badge.className = `badge status-${run.status}`;
    $("prediction-id").textContent = run.id;
    const web = $("web-link");
    web.hidden = !run.urls.web;
    if (run.urls.web) web.href = run.urls.web;
    $("cancel").hidden = TERMINAL.has(run.status) || run.status === "gone" || !run.urls.cancel;
    $("result-model").textContent = run.model;
    $("result-prompt").textContent = run.prompt;
    const progress = $("progress");
    progress.value = run.progress || 0;
    $("progress-text").textContent = `${run.progress || 0}%` + (run.steps ? ` (${run.steps})` : "");
    const error = $("error");
    error.hidden = !run.error;
    error.textContent = run.error || "";
    syncOutputs($("outputs"), run.outputs);
    $("metrics").textContent =
      run.predict_time !== undefined ? `predict_time ${run.predict_time.toFixed(2)} s` : "";
    const logs = $("logs");
    if (logs.textContent !== run.logs) logs.textContent = run.logs;
  }

  // Adds the outputs not on show yet (each image is loaded once, not on every update).
  function syncOutputs(box, outputs) {
    const shown = [...box.children].map((f) => f.dataset.src);
    if (shown.length > outputs.length || shown.some((s, i) => s !== outputs[i])) {
      box.replaceChildren();
    }
    outputs.slice(box.children.length).forEach((url, i) => {
      const n = box.children.length + i;
      const img = el("img", { alt: `output ${n}`, "data-testid": "output-image", src: url });
      const caption = el("figcaption", { class: "hint" });
      img.addEventListener("load", () => {
        caption.textContent = `${img.naturalWidth}×${img.naturalHeight}`;
      });
      const link = el("a", { href: url, target: "_blank", rel: "noopener" }, img);
      box.append(el("figure", { "data-src": url }, link, caption));
    });
  }

  async function select(id) {
    state.current = id;
    let run = state.runs.get(id);
    if (!run) {
      const saved = history().find((h) => h.id === id);
      if (!saved) return;
      run = { ...saved, logs: "", progress: saved.status === "succeeded" ? 100 : 0 };
      state.runs.set(id, run);
      renderResult();
      refresh(run);
    }
    renderResult();
    renderGallery();
  }

  // ------------------------------------------------------------------ gallery
  function remember(run) {
    const entry = {
      id: run.id,
      model: run.model,
      prompt: run.prompt,
      status: run.status,
      created_at: run.created_at,
      error: run.error,
      // data: URIs (--output-urls data) are too big to keep
      outputs: run.outputs.filter((u) => !u.startsWith("data:")),
      urls: { get: run.urls.get, cancel: run.urls.cancel, stream: run.urls.stream, web: run.urls.web },
    };
    const list = history().filter((h) => h.id !== run.id);
    const at = list.findIndex((h) => (h.created_at || "") < (entry.created_at || ""));
    list.splice(at < 0 ? list.length : at, 0, entry);
    store.set(historyKey(), list.slice(0, MAX_HISTORY));
    renderGallery();
  }

  function renderGallery() {
    const list = history();
    $("gallery-empty").hidden = list.length > 0;
    $("gallery").replaceChildren(
      ...list.map((h) => {
        const thumbs = h.outputs.length
          ? h.outputs.slice(0, 4).map((u) => el("img", { src: u, alt: "", loading: "lazy" }))
          : [el("span", { class: "thumb-empty", text: h.status })];
        const when = h.created_at ? new Date(h.created_at).toLocaleString() : "";
        return el(
          "li",
          {
            class: "card" + (h.id === state.current ? " current" : ""),
            "data-testid": "gallery-item",
            "data-id": h.id,
            "data-status": h.status,
          },
          el(
            "button",
            { type: "button", class: "card-button", onclick: () => select(h.id), title: h.id },
            el("div", { class: `thumbs n${Math.min(h.outputs.length, 4)}` }, thumbs),
            el(
              "div",
              { class: "card-text" },
              el(
                "div",
                { class: "card-head" },
                el("span", { class: `badge status-${h.status}`, text: h.status }),
                el("span", { class: "card-model", text: (h.model || "").split("/")[1] || h.model }),
              ),
              el("p", { class: "card-prompt", text: h.prompt || "(no prompt)" }),
              el("small", { class: "hint", text: when }),
            ),
          ),
        );
      }),
    );
  }

  // Predictions left running at the last visit: their state now.
  function refreshUnfinished() {
    for (const h of history()) {
      if (!TERMINAL.has(h.status) && h.status !== "gone" && h.urls && h.urls.get) {
        const run = { ...h, logs: "", progress: 0 };
        state.runs.set(h.id, run);
        refresh(run);
      }
    }
  }

  // ------------------------------------------------------------------ start
  function init() {
    $("token").value = store.get("token", DEFAULT_TOKEN);
    const savedPrefix = store.get("prefix", "v1");
    if ([...$("prefix").options].some((o) => o.value === savedPrefix)) $("prefix").value = savedPrefix;
    $("run-form").addEventListener("submit", submit);
    $("model").addEventListener("change", () => loadModel($("model").value));
    let shownToken = token();
    $("token").addEventListener("change", () => {
      if (token() === shownToken) return;
      shownToken = token();
      store.set("token", token());
      state.schemas.clear();
      state.current = null;
      renderResult();
      renderGallery();
      loadModels();
    });
    $("prefix").addEventListener("change", () => {
      store.set("prefix", prefix());
      loadModels();
    });
    $("cancel").addEventListener("click", cancel);
    $("clear-gallery").addEventListener("click", () => {
      store.set(historyKey(), []);
      renderGallery();
    });
    $("clear-calls").addEventListener("click", () => $("api-log").replaceChildren());
    renderGallery();
    refreshUnfinished();
    loadModels();
  }

  init();
})();
