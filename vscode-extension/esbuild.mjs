// Bundles the extension (one CommonJS file, `vscode` left external) and, with --tests, each unit
// test file. Bundling keeps the .vsix small and lets it ship without node_modules.
import { build } from "esbuild";
import { readdirSync } from "node:fs";

const production = process.argv.includes("--production");
const tests = process.argv.includes("--tests");

const common = {
  bundle: true,
  platform: "node",
  target: "node18",
  format: "cjs",
  logLevel: "warning",
};

if (tests) {
  const entryPoints = readdirSync("test")
    .filter((name) => name.endsWith(".test.ts"))
    .map((name) => `test/${name}`);
  // Unit tests cover modules that never import `vscode`; marking it external makes an accidental
  // import fail loudly at run time instead of being silently bundled.
  await build({ ...common, entryPoints, outdir: "out/test", sourcemap: "inline", external: ["vscode"] });
} else {
  await build({
    ...common,
    entryPoints: ["src/extension.ts"],
    outfile: "dist/extension.js",
    external: ["vscode"],
    sourcemap: !production,
    minify: production,
  });
}
