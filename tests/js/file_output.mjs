// The official npm client's FileOutput against an emulator whose outputs it wraps as files:
// `--output-urls data` (data: URIs) or `--tls` (https: URLs; node trusts the emulator's CA
// through NODE_EXTRA_CA_CERTS, set by the test).
//
// Argument: a JSON object {baseUrl, token}. Output: one JSON object on stdout, step name ->
// {ok: value} or {error: {...}}, where each output file is {isFileOutput, url, type, base64}.
import Replicate from "replicate";

const { baseUrl, token } = JSON.parse(process.argv[2]);
const replicate = new Replicate({ auth: token, baseUrl });
const results = {};

async function step(name, fn) {
  try {
    results[name] = { ok: await fn() };
  } catch (error) {
    const { name: kind, message } = error;
    results[name] = { error: { name: kind, message, stack: String(error.stack) } };
  }
}

async function describe(output) {
  const blob = await output.blob();
  return {
    isFileOutput: output instanceof ReadableStream && typeof output.blob === "function",
    url: String(output.url()).slice(0, 40),
    type: blob.type,
    base64: Buffer.from(await blob.arrayBuffer()).toString("base64"),
  };
}

await step("run_list", async () => {
  const output = await replicate.run("black-forest-labs/flux-schnell", {
    input: { prompt: "an npm file", num_outputs: 2 },
  });
  return Promise.all(output.map(describe));
});

await step("run_single", async () => {
  const output = await replicate.run("black-forest-labs/flux-1.1-pro", {
    input: { prompt: "an npm png", output_format: "png", aspect_ratio: "16:9" },
  });
  return describe(output);
});

process.stdout.write(JSON.stringify(results));
