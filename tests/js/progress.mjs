// `replicate.run(ref, options, progress)` of the official npm client: what its progress callback
// sees while flux-dev runs.
//
// The emulator runs with `--clock manual`: the client is given a `fetch` (a documented constructor
// option) that moves the server's clock `advance` seconds before each poll of the prediction, so
// the run sees the model's logs grow one tick at a time however fast or slow this machine is.
// Argument: a JSON object {baseUrl, adminUrl, token, advance}. Output: one JSON object on stdout,
// {seen: [{status, progress}], output} or {error}.
import Replicate from "replicate";

const { baseUrl, adminUrl, token, advance } = JSON.parse(process.argv[2]);

// The last tqdm line of the logs, as the clients read it (`NN%|bar| k/n`).
function progressOf(logs) {
  const lines = (logs || "").split("\n").reverse();
  for (const line of lines) {
    const match = line.match(/^\s*(\d+)%\s*\|.+?\|\s*(\d+)\/(\d+)/);
    if (match) {
      return { percent: Number(match[1]), current: Number(match[2]), total: Number(match[3]) };
    }
  }
  return null;
}

async function advancingFetch(url, init = {}) {
  const { pathname } = new URL(String(url));
  if ((init.method || "GET") === "GET" && /\/predictions\/[^/]+$/.test(pathname)) {
    const moved = await fetch(`${adminUrl}/clock`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ advance }),
    });
    if (!moved.ok) {
      throw new Error(`moving the clock: ${moved.status} ${await moved.text()}`);
    }
  }
  return fetch(url, init);
}

const replicate = new Replicate({ auth: token, baseUrl, fetch: advancingFetch });
const seen = [];
try {
  const output = await replicate.run(
    "black-forest-labs/flux-dev",
    { input: { prompt: "npm progress" }, wait: { mode: "poll", interval: 1 } },
    (prediction) => seen.push({ status: prediction.status, progress: progressOf(prediction.logs) }),
  );
  process.stdout.write(JSON.stringify({ seen, output }));
} catch (error) {
  process.stdout.write(JSON.stringify({ seen, error: `${error.name}: ${error.message}` }));
}
