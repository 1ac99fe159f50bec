// Independent numerical reference for Totoshka's ml5 fast-style-transfer port.
//
// Runs the layer sequence of ml5's StyleTransfer (Engstrom's TensorFlow network,
// as ported to deeplearn.js / TensorFlow.js) with TensorFlow.js ops on the CPU
// backend, and writes each result as raw little-endian float32 HWC in 0..255.
//
// Usage:
//   node ml5_style.mjs jobs.json
//   node ml5_style.mjs - < jobs.json
//
// jobs.json: {"jobs": [{
//     "model_dir": "/path/to/<style>",  // manifest.json + raw float32 files
//     "input": "/path/to/img.f32",      // raw float32 HWC RGB 0..255, or .npy
//     "shape": [H, W, 3],               // required for raw input, ignored for .npy
//     "output": "/path/to/out.f32",     // raw float32 HWC, written here
//     "crop": true                      // optional (default true): keep the
//                                       // top-left H x W of the 4*ceil(n/4) output
//   }, ...]}
//
// For every job one JSON line goes to stdout:
//   {"index": i, "output": ..., "shape": [h, w, 3], "full_shape": [fh, fw, 3], "ms": t}
// Any error exits non-zero with a message on stderr.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';

const EPSILON = 1e-3;

function die(message) {
  process.stderr.write(`ml5_style.mjs: ${message}\n`);
  process.exit(2);
}

function asFloat32(buffer, what) {
  if (buffer.byteLength % 4 !== 0) die(`${what}: ${buffer.byteLength} bytes is not float32`);
  // Copy into an aligned ArrayBuffer (Buffer slices may be unaligned); data is little-endian.
  const out = new Float32Array(buffer.byteLength / 4);
  new Uint8Array(out.buffer).set(buffer);
  return out;
}

// ----- checkpoint (deeplearn.js CheckpointLoader format) -----------------------------

function varName(id) {
  return id === 0 ? 'Variable' : `Variable_${id}`;
}

function loadCheckpoint(dir) {
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
  const vars = {};
  for (let id = 0; id < 48; id++) {
    const name = varName(id);
    const entry = manifest[name];
    if (!entry) die(`${dir}: manifest has no ${name}`);
    const data = asFloat32(readFileSync(join(dir, entry.filename)), `${dir}/${entry.filename}`);
    const size = entry.shape.reduce((a, b) => a * b, 1);
    if (data.length !== size) {
      die(`${dir}/${entry.filename}: ${data.length} floats, shape ${entry.shape} wants ${size}`);
    }
    vars[name] = tf.tensor(data, entry.shape, 'float32');
  }
  return vars;
}

// ----- input ---------------------------------------------------------------------------

function readNpy(path) {
  const buf = readFileSync(path);
  if (buf.toString('latin1', 0, 6) !== '\x93NUMPY') die(`${path}: not a .npy file`);
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const headerStart = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', headerStart, headerStart + headerLen);
  if (!/'descr':\s*'<f4'/.test(header)) die(`${path}: dtype must be little-endian float32`);
  if (/'fortran_order':\s*True/.test(header)) die(`${path}: fortran_order not supported`);
  const m = header.match(/'shape':\s*\(([^)]*)\)/);
  if (!m) die(`${path}: no shape in header`);
  const shape = m[1].split(',').map((s) => s.trim()).filter((s) => s.length).map(Number);
  return { data: asFloat32(buf.subarray(headerStart + headerLen), path), shape };
}

function readInput(job) {
  if (job.input.endsWith('.npy')) return readNpy(job.input);
  if (!job.shape) die(`${job.input}: raw input needs "shape": [H, W, 3]`);
  return { data: asFloat32(readFileSync(job.input), job.input), shape: job.shape };
}

// ----- ml5 StyleTransfer layer sequence -----------------------------------------------

function makeNet(vars) {
  const v = (id) => vars[varName(id)];

  // moments over H and W (biased variance), then (x - mean) / sqrt(var + eps),
  // then scale * normalized + shift; variables: varId = shift, varId + 1 = scale.
  function instanceNorm(input, varId) {
    const [height, width, depth] = input.shape;
    const { mean, variance } = tf.moments(input, [0, 1]);
    const normalized = tf.div(tf.sub(input, mean), tf.sqrt(tf.add(variance, tf.scalar(EPSILON))));
    const shifted = tf.add(tf.mul(v(varId + 1), normalized), v(varId));
    return tf.reshape(shifted, [height, width, depth]);
  }

  function convLayer(input, strides, relu, varId) {
    const y = tf.conv2d(input, v(varId), [strides, strides], 'same');
    const y2 = instanceNorm(y, varId + 1);
    return relu ? tf.relu(y2) : y2;
  }

  function convTransposeLayer(input, numFilters, strides, varId) {
    const [height, width] = input.shape;
    const outShape = [height * strides, width * strides, numFilters];
    const y = tf.conv2dTranspose(input, v(varId), outShape, [strides, strides], 'same');
    return tf.relu(instanceNorm(y, varId + 1));
  }

  function residualBlock(input, varId) {
    const conv1 = convLayer(input, 1, true, varId);
    const conv2 = convLayer(conv1, 1, false, varId + 3);
    if (conv2.shape.join() !== input.shape.join()) {
      die(`residual shape mismatch ${conv2.shape} vs ${input.shape}`);
    }
    return tf.add(conv2, input);
  }

  return function predict(image) {
    return tf.tidy(() => {
      const conv1 = convLayer(image, 1, true, 0);
      const conv2 = convLayer(conv1, 2, true, 3);
      const conv3 = convLayer(conv2, 2, true, 6);
      const resid1 = residualBlock(conv3, 9);
      const resid2 = residualBlock(resid1, 15);
      const resid3 = residualBlock(resid2, 21);
      const resid4 = residualBlock(resid3, 27);
      const resid5 = residualBlock(resid4, 33);
      const convT1 = convTransposeLayer(resid5, 64, 2, 39);
      const convT2 = convTransposeLayer(convT1, 32, 2, 42);
      const convT3 = convLayer(convT2, 1, false, 45);
      // ml5 then divides by 255 for display; the port's contract is 0..255, so stop here.
      return tf.clipByValue(tf.add(tf.mul(tf.tanh(convT3), tf.scalar(150)), tf.scalar(255 / 2)), 0, 255);
    });
  };
}

// ----- main --------------------------------------------------------------------------

async function main() {
  const arg = process.argv[2];
  if (!arg) die('usage: node ml5_style.mjs <jobs.json | ->');
  const spec = JSON.parse(readFileSync(arg === '-' ? 0 : arg, 'utf8'));
  const jobs = Array.isArray(spec) ? spec : spec.jobs;
  if (!Array.isArray(jobs)) die('jobs file must be a list or {"jobs": [...]}');

  const ok = await tf.setBackend('cpu');
  if (!ok || tf.getBackend() !== 'cpu') die('could not select the tfjs CPU backend');
  await tf.ready();

  const nets = new Map();
  for (const [index, job] of jobs.entries()) {
    const t0 = Date.now();
    if (!nets.has(job.model_dir)) nets.set(job.model_dir, makeNet(loadCheckpoint(job.model_dir)));
    const predict = nets.get(job.model_dir);

    const { data, shape } = readInput(job);
    if (shape.length !== 3 || shape[2] !== 3) die(`${job.input}: shape ${shape} is not [H, W, 3]`);
    const [h, w] = shape;
    if (data.length !== h * w * 3) die(`${job.input}: ${data.length} floats for shape ${shape}`);

    const image = tf.tensor3d(data, [h, w, 3], 'float32');
    const full = predict(image);
    const fullShape = full.shape;
    const crop = job.crop === undefined ? true : Boolean(job.crop);
    const out = crop ? tf.slice(full, [0, 0, 0], [h, w, 3]) : full;
    const values = await out.data();
    writeFileSync(job.output, Buffer.from(values.buffer, values.byteOffset, values.byteLength));
    process.stdout.write(`${JSON.stringify({
      index, output: job.output, shape: out.shape, full_shape: fullShape, ms: Date.now() - t0,
    })}\n`);
    tf.dispose([image, full, out]);
  }
  process.stdout.write(`${JSON.stringify({ done: jobs.length, backend: tf.getBackend(), tfjs: tf.version_core })}\n`);
}

main().catch((err) => die(err && err.stack ? err.stack : String(err)));
