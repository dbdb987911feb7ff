// A minimal Chrome DevTools Protocol client for the real-VS-Code test (Node 22+: global WebSocket).
// Usage:
//   node cdp.mjs PORT eval EXPRESSION        prints the expression's JSON value
//   node cdp.mjs PORT screenshot FILE.png    saves a PNG of the page
//   node cdp.mjs PORT keys JSON              sends key presses / text: [{"key": "F1"}, {"text": "abc"}]
//   node cdp.mjs PORT click X,Y              clicks the left mouse button at page coordinates
// It attaches to the first page target and exits non-zero with a message on any failure.
import { writeFileSync } from "node:fs";

const [port, action, arg] = process.argv.slice(2);
const KEYS = {
  Enter: { code: "Enter", keyCode: 13, text: "\r" },
  Escape: { code: "Escape", keyCode: 27 },
  F1: { code: "F1", keyCode: 112 },
  ArrowDown: { code: "ArrowDown", keyCode: 40 },
};

async function pageSocketUrl() {
  const response = await fetch(`http://127.0.0.1:${port}/json/list`);
  const targets = await response.json();
  const page = targets.find((t) => t.type === "page");
  if (!page) throw new Error("no page target");
  return page.webSocketDebuggerUrl;
}

async function main() {
  const ws = new WebSocket(await pageSocketUrl());
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error("cannot connect to the page"));
  });
  let nextId = 0;
  const pending = new Map();
  ws.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    const waiter = pending.get(msg.id);
    if (waiter) {
      pending.delete(msg.id);
      if (msg.error) waiter.reject(new Error(JSON.stringify(msg.error)));
      else waiter.resolve(msg.result);
    }
  };
  const send = (method, params = {}) =>
    new Promise((resolve, reject) => {
      const id = ++nextId;
      pending.set(id, { resolve, reject });
      ws.send(JSON.stringify({ id, method, params }));
    });

  if (action === "eval") {
    const result = await send("Runtime.evaluate", { expression: arg, returnByValue: true, awaitPromise: true });
    if (result.exceptionDetails) throw new Error(JSON.stringify(result.exceptionDetails));
    process.stdout.write(JSON.stringify(result.result.value ?? null));
  } else if (action === "screenshot") {
    const result = await send("Page.captureScreenshot", { format: "png" });
    writeFileSync(arg, Buffer.from(result.data, "base64"));
  } else if (action === "keys") {
    for (const step of JSON.parse(arg)) {
      if (step.text !== undefined) {
        await send("Input.insertText", { text: step.text });
      } else {
        const k = KEYS[step.key];
        if (!k) throw new Error(`unknown key ${step.key}`);
        const base = { key: step.key, code: k.code, windowsVirtualKeyCode: k.keyCode, nativeVirtualKeyCode: k.keyCode };
        await send("Input.dispatchKeyEvent", { type: "keyDown", ...base, ...(k.text ? { text: k.text } : {}) });
        await send("Input.dispatchKeyEvent", { type: "keyUp", ...base });
      }
      await new Promise((r) => setTimeout(r, step.wait ?? 300));
    }
  } else if (action === "click") {
    const [x, y] = arg.split(",").map(Number);
    const at = { x, y, button: "left", clickCount: 1 };
    await send("Input.dispatchMouseEvent", { type: "mouseMoved", x, y });
    await send("Input.dispatchMouseEvent", { type: "mousePressed", ...at });
    await send("Input.dispatchMouseEvent", { type: "mouseReleased", ...at });
  } else {
    throw new Error(`unknown action ${action}`);
  }
  ws.close();
}

const timer = setTimeout(() => {
  process.stderr.write("cdp: no answer after 30 s\n");
  process.exit(2);
}, 30_000);
main()
  .then(() => {
    clearTimeout(timer);
    process.exit(0);
  })
  .catch((error) => {
    process.stderr.write(`cdp: ${error.message}\n`);
    process.exit(1);
  });
