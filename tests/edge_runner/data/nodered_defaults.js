// Regenerates nodered5_defaults.json: every core node type's `defaults` (the fields Node-RED's
// editor writes for a new node), read by running the editor scripts of Node-RED's own .html
// files against a stub RED that records each registerType call:
//   node nodered_defaults.js <node-red>/node_modules/@node-red/nodes/core > nodered5_defaults.json
"use strict";
const fs = require("fs");
const path = require("path");

// Whatever an editor script touches at load time (RED.validators.number(), $(...)) is harmless.
const anything = new Proxy(function () {}, {
    get: (target, key) => (key === Symbol.toPrimitive ? () => "" : anything),
    apply: () => anything,
    construct: () => anything,
});

const out = {};
const root = process.argv[2];
for (const dir of fs.readdirSync(root).sort()) {
    const folder = path.join(root, dir);
    if (!fs.statSync(folder).isDirectory()) continue;
    for (const file of fs.readdirSync(folder).filter((f) => f.endsWith(".html")).sort()) {
        const text = fs.readFileSync(path.join(folder, file), "utf8");
        const scripts = /<script type="text\/javascript">([\s\S]*?)<\/script>/g;
        const registerType = (type, definition) => {
            const fields = {};
            for (const [name, spec] of Object.entries(definition.defaults || {})) {
                const value = spec && Object.prototype.hasOwnProperty.call(spec, "value") ? spec.value : "";
                fields[name] = typeof value === "function" ? "" : value;
            }
            out[type] = { file: `${dir}/${file}`, config: definition.category === "config", defaults: fields };
        };
        const RED = new Proxy({}, {
            get: (target, key) => (key === "nodes" ? { registerType } : anything),
        });
        let match;
        while ((match = scripts.exec(text))) {
            new Function("RED", "$", "_", "jsonata", match[1])(RED, anything, anything, anything);
        }
    }
}
process.stdout.write(JSON.stringify(out, null, 1) + "\n");
