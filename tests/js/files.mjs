// The official npm client uploading file inputs to a running emulator (POST /files, multipart).
//
// Run by tests/test_live_uploads.py like client.mjs (a folder whose node_modules is the one
// `make install` fills). Argument: a JSON object {baseUrl, token, portrait} (portrait: the path of
// a PNG). Output: one JSON object on stdout, step name -> {ok: value} or {error: {...}}; every step
// runs even when one before failed.
import { readFileSync } from "node:fs";
import Replicate from "replicate";

const { baseUrl, token, portrait } = JSON.parse(process.argv[2]);
const results = {};
const bytes = readFileSync(portrait);

async function step(name, fn) {
  try {
    results[name] = { ok: await fn() };
  } catch (error) {
    results[name] = {
      error: {
        name: error.name,
        message: error.message,
        status: error.response ? error.response.status : null,
        stack: String(error.stack),
      },
    };
  }
}

// One token per purpose, so each list sees only its own files.
const client = (purpose) => new Replicate({ auth: `${token}_${purpose}`, baseUrl });

// A Buffer input: uploaded as `buffer_<ms>` (application/octet-stream), its urls.get passed on.
await step("run_with_buffer", () =>
  client("buffer").run("black-forest-labs/flux-kontext-pro", {
    input: { prompt: "an npm portrait", input_image: bytes },
  }),
);

// A Blob input in FLUX.2's list of images; the output takes the first image's proportions.
await step("run_with_blob", () =>
  client("blob").run("black-forest-labs/flux-2-pro", {
    input: {
      prompt: "an npm blob",
      input_images: [new Blob([bytes], { type: "image/png" })],
      aspect_ratio: "match_input_image",
    },
  }),
);

await step("uploads_listed", async () => {
  const buffer = await client("buffer").files.list();
  const blob = await client("blob").files.list();
  return { buffer: buffer.results, blob: blob.results };
});

await step("files_api", async () => {
  const files = client("files");
  const created = await files.files.create(bytes, { purpose: "npm test" });
  const got = await files.files.get(created.id);
  const listed = await files.files.list();
  const deleted = await files.files.delete(created.id);
  let after = null;
  try {
    await files.files.get(created.id);
  } catch (error) {
    after = error.response ? error.response.status : error.message;
  }
  return { created, got, listed: listed.results.map((f) => f.id), deleted, after };
});

process.stdout.write(JSON.stringify(results));
