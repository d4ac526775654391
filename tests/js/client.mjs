// The official npm client (`replicate`, pinned in package.json) against a running emulator.
//
// Run by tests/test_official_clients.py from a folder whose node_modules is the one `make install`
// fills (.venv/js/node_modules), so `import Replicate from "replicate"` resolves as in a user's
// project. Argument: a JSON object {baseUrl, guardedBaseUrl, token}. Output: one JSON object on
// stdout, step name -> {ok: value} or {error: {...}}; every step runs even when one before failed.
import Replicate from "replicate";

const { baseUrl, guardedBaseUrl, token } = JSON.parse(process.argv[2]);
const results = {};

function describe(error) {
  return {
    name: error.name,
    message: error.message,
    status: error.response ? error.response.status : null,
  };
}

async function step(name, fn) {
  try {
    results[name] = { ok: await fn() };
  } catch (error) {
    results[name] = { error: { ...describe(error), stack: String(error.stack) } };
  }
}

// The error a call throws, or {thrown: false}.
async function thrown(fn) {
  try {
    await fn();
  } catch (error) {
    return { thrown: true, ...describe(error) };
  }
  return { thrown: false };
}

function summary(p) {
  const { id, model, version, status, output, error, urls, logs } = p;
  return { id, model, version, status, output, error, urls, logs };
}

// One token per purpose, so each list sees only its own predictions.
const client = (purpose) => new Replicate({ auth: `${token}_${purpose}`, baseUrl });
const replicate = client("main");

await step("run_block", () =>
  replicate.run("black-forest-labs/flux-schnell", {
    input: { prompt: "an npm fox", num_outputs: 2 },
  }),
);

await step("run_single_output", () =>
  replicate.run("black-forest-labs/flux-1.1-pro", { input: { prompt: "an npm owl" } }),
);

await step("create_and_wait", async () => {
  const created = await replicate.predictions.create({
    model: "black-forest-labs/flux-dev",
    input: { prompt: "an npm dev" },
  });
  const done = await replicate.wait(created, { interval: 20 });
  return { created: summary(created), done: summary(done) };
});

await step("create_by_version_and_wait", async () => {
  const created = await replicate.predictions.create({
    version: "black-forest-labs/flux-dev",
    input: { prompt: "an npm version" },
  });
  const done = await replicate.wait(created, { interval: 20 });
  return { created: summary(created), done: summary(done) };
});

await step("create_wait_true", async () => {
  const created = await replicate.predictions.create({
    model: "black-forest-labs/flux-schnell",
    input: { prompt: "an npm sync create" },
    wait: true,
  });
  return summary(created);
});

await step("get", async () => {
  const created = await replicate.predictions.create({
    model: "black-forest-labs/flux-schnell",
    input: { prompt: "an npm get" },
  });
  const got = await replicate.predictions.get(created.id);
  return { created: summary(created), got: summary(got) };
});

await step("cancel", async () => {
  // "hold ..." matches the test's scenario: the prediction stays `starting` long after this.
  const created = await replicate.predictions.create({
    model: "black-forest-labs/flux-pro",
    input: { prompt: "hold npm cancel" },
  });
  const canceled = await replicate.predictions.cancel(created.id);
  const got = await replicate.predictions.get(created.id);
  return { created: summary(created), canceled: summary(canceled), got: summary(got) };
});

await step("list_and_paginate", async () => {
  const pager = client("page");
  const created = [];
  for (let i = 0; i < 105; i += 1) {
    const p = await pager.predictions.create({
      model: "black-forest-labs/flux-schnell",
      input: { prompt: `npm page ${i}` },
    });
    created.push(p.id);
  }
  const first = await pager.predictions.list();
  const pages = [];
  for await (const page of pager.paginate(pager.predictions.list)) {
    pages.push(page.map((p) => p.id));
  }
  return {
    created,
    first: { next: first.next, previous: first.previous, ids: first.results.map((p) => p.id) },
    pages,
  };
});

await step("models_get", () => replicate.models.get("black-forest-labs", "flux-schnell"));

// The rest of what the client reads: the account, the models, a model's versions, the secret.
await step("account", () => replicate.accounts.current());

await step("models_list", async () => {
  const page = await replicate.models.list();
  return {
    next: page.next,
    previous: page.previous,
    models: page.results.map((m) => `${m.owner}/${m.name}`),
  };
});

await step("versions_list", () =>
  replicate.models.versions.list("black-forest-labs", "flux-schnell"),
);

await step("webhook_secret", () => replicate.webhooks.default.secret.get());

await step("invalid_input", () =>
  thrown(() =>
    replicate.run("black-forest-labs/flux-schnell", {
      input: { prompt: "too many", num_outputs: 9 },
    }),
  ),
);

await step("invalid_inputs", () =>
  thrown(() =>
    replicate.predictions.create({
      version: "black-forest-labs/flux-schnell",
      input: { prompt: "two problems", num_outputs: 9, output_format: "gif" },
    }),
  ),
);

await step("missing_prompt", () =>
  thrown(() =>
    replicate.predictions.create({ model: "black-forest-labs/flux-dev", input: {} }),
  ),
);

await step("not_found", async () => ({
  prediction: await thrown(() => replicate.predictions.get("zzzzzzzzzzzzzzzzzzzzzzzzzz")),
  model: await thrown(() => replicate.models.get("black-forest-labs", "flux-none")),
}));

await step("refused_token", async () => {
  const refused = new Replicate({ auth: "r8_refused", baseUrl: guardedBaseUrl });
  const accepted = new Replicate({ auth: "good", baseUrl: guardedBaseUrl });
  return {
    refused: await thrown(() => refused.predictions.list()),
    accepted: (await accepted.predictions.list()).results.length,
  };
});

process.stdout.write(JSON.stringify(results));
