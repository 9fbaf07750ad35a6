// "Try it: segment your own photo" (chapters/try_it.md): the shipped CamVid FCN-8s runs in the
// reader's browser with onnxruntime-web (vendored in _static/onnxruntime-web/); nothing is uploaded,
// no request leaves the page's origin.
//
// The exported model (fcnlib export, _static/fcn/camvid-cpu.onnx) holds the whole prediction path
// of `fcnlib predict --weights camvid-cpu`: uint8 photo in, the resize to the training scale, the
// test scales and flip, the upsampling and the argmax inside the graph, uint8 labels out. This
// script only decodes the photo (EXIF rotation applied, alpha over white), feeds its pixels, and
// draws what comes back.
//
// Contract for tests (tools/check_photo_page.py drives it this way):
//   <input type="file" id="fcn-photo"> in the page's HTML; nothing runs on load;
//   document.body.dataset.fcnStatus: "busy" while a photo is worked on, then "done" or "error";
//   window.fcnResult = {width, height, labels: Uint8Array(width * height), ms} on "done";
//   #fcn-message: one line saying what went wrong on "error".
(function () {
  "use strict";
  const here = new URL(".", document.currentScript.src); // .../_static/fcn/
  const MODEL_URL = new URL("camvid-cpu.onnx", here);
  const CARD_URL = new URL("camvid-cpu.json", here); // classes, palette, settings (from the .onnx)
  const SAMPLES_URL = new URL("../fcn-samples/samples.json", here); // written at build time
  const ORT_URL = new URL("../onnxruntime-web/", here);
  const MAX_PIXELS = 100000000; // the limit `fcnlib predict` refuses above (constants.py)
  const STRIP_PIXELS = 1 << 21; // output rows per model call: 11 classes x 4 bytes x 2 M px strips
  const VIEW_PIXELS = 1200 * 900; // the pictures on the page are drawn at most this big

  let session = null; // created on the first photo, not on load
  let card = null;
  let queue = Promise.resolve(); // photos are worked on one after the other
  const $ = (id) => document.getElementById(id);

  function setStatus(status, message) {
    document.body.dataset.fcnStatus = status;
    $("fcn-message").textContent = message || "";
  }

  async function loadModel() {
    if (session) return;
    ort.env.wasm.wasmPaths = ORT_URL.href;
    // Threads need SharedArrayBuffer, which browsers give only to cross-origin-isolated pages
    // (GitHub Pages is not): one thread otherwise.
    ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
    card = await (await fetch(CARD_URL)).json();
    session = await ort.InferenceSession.create(MODEL_URL.href, { executionProviders: ["wasm"] });
  }

  // ---- checks of the file itself, so that a bad file gives one clear line -------------------
  function kindOf(b) {
    if (b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return "JPEG";
    if (b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) return "PNG";
    if (b[0] === 0x47 && b[1] === 0x49 && b[2] === 0x46) return "GIF";
    if (b[0] === 0x42 && b[1] === 0x4d) return "BMP";
    if (b[0] === 0x52 && b[1] === 0x49 && b[8] === 0x57 && b[9] === 0x45) return "WebP";
    return null;
  }

  // A JPEG ends with EOI (FF D9) after its last scan (FF DA): entropy-coded data never holds
  // FF D9 or FF DA (0xFF is stuffed as FF 00), and an EXIF thumbnail's EOI comes before the
  // main image's scans. Browsers draw a truncated JPEG with a grey bottom; PIL refuses it.
  function jpegTruncated(b) {
    let lastSos = -1, lastEoi = -1;
    for (let i = 0; i + 1 < b.length; i++) {
      if (b[i] !== 0xff) continue;
      if (b[i + 1] === 0xda) lastSos = i;
      else if (b[i + 1] === 0xd9) lastEoi = i;
    }
    return lastSos < 0 || lastEoi < lastSos;
  }

  function pngTruncated(b) { // the IEND chunk closes every PNG
    const tail = String.fromCharCode(...b.subarray(Math.max(0, b.length - 12)));
    return tail.indexOf("IEND") < 0;
  }

  async function decode(blob, name) {
    if (blob.size === 0) throw new Error(`${name}: empty file (0 bytes)`);
    const bytes = new Uint8Array(await blob.arrayBuffer());
    const kind = kindOf(bytes);
    if (!kind) throw new Error(`${name}: not an image file (JPEG, PNG, GIF, BMP or WebP)`);
    if ((kind === "JPEG" && jpegTruncated(bytes)) || (kind === "PNG" && pngTruncated(bytes)))
      throw new Error(`${name}: truncated ${kind} (the file ends before the image does)`);
    let bitmap;
    try { // EXIF orientation applied, as fcnlib.predict does; colours as stored (no profile)
      bitmap = await createImageBitmap(new Blob([bytes]), {
        imageOrientation: "from-image", colorSpaceConversion: "none", premultiplyAlpha: "none" });
    } catch (e) {
      throw new Error(`${name}: corrupt ${kind}, the browser cannot decode it`);
    }
    const { width, height } = bitmap;
    if (width * height > MAX_PIXELS) {
      bitmap.close();
      throw new Error(`${name}: ${width} x ${height} px is more than the limit of ` +
        `${MAX_PIXELS.toLocaleString("en")} pixels (as fcnlib predict)`);
    }
    const canvas = new OffscreenCanvas(width, height);
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    ctx.fillStyle = "#fff"; // transparency over white, as fcnlib.predict does
    ctx.fillRect(0, 0, width, height);
    ctx.drawImage(bitmap, 0, 0);
    bitmap.close();
    return { width, height, canvas, rgba: ctx.getImageData(0, 0, width, height).data };
  }

  // ---- the model: strips of output rows keep the full-size logits small ----------------------
  async function segment(photo) {
    const { width: W, height: H } = photo;
    const image = new ort.Tensor("uint8", new Uint8Array(photo.rgba.buffer), [H, W, 4]);
    const labels = new Uint8Array(W * H);
    const step = Math.max(1, Math.floor(STRIP_PIXELS / W));
    const t0 = performance.now();
    for (let y0 = 0; y0 < H; y0 += step) {
      const n = Math.min(step, H - y0);
      const rows = new ort.Tensor("int64", BigInt64Array.from({ length: n }, (_, i) => BigInt(y0 + i)), [n]);
      const out = await session.run({ image, rows });
      labels.set(out.labels.data, y0 * W);
    }
    return { width: W, height: H, labels, ms: performance.now() - t0 };
  }

  // ---- what the reader sees --------------------------------------------------------------------
  function draw(photo, result) {
    const { width: W, height: H, labels } = result;
    const k = Math.min(1, Math.sqrt(VIEW_PIXELS / (W * H)));
    const w = Math.max(1, Math.round(W * k)), h = Math.max(1, Math.round(H * k));
    const views = ["fcn-view-photo", "fcn-view-overlay", "fcn-view-labels"].map((id) => {
      const c = $(id); c.width = w; c.height = h; return c.getContext("2d");
    });
    views[0].drawImage(photo.canvas, 0, 0, w, h);
    const small = views[0].getImageData(0, 0, w, h);
    const over = views[1].createImageData(w, h), map = views[2].createImageData(w, h);
    for (let y = 0; y < h; y++) {
      const sy = Math.min(H - 1, Math.floor((y + 0.5) / k));
      for (let x = 0; x < w; x++) {
        const c = card.palette[labels[sy * W + Math.min(W - 1, Math.floor((x + 0.5) / k))]];
        const i = 4 * (y * w + x);
        for (let j = 0; j < 3; j++) {
          map.data[i + j] = c[j];
          over.data[i + j] = 0.5 * small.data[i + j] + 0.5 * c[j];
        }
        map.data[i + 3] = over.data[i + 3] = 255;
      }
    }
    views[1].putImageData(over, 0, 0);
    views[2].putImageData(map, 0, 0);
    legend(labels);
    $("fcn-time").textContent = `${W} x ${H} px; the model took ${Math.round(result.ms)} ms ` +
      `(${session ? "WebAssembly, " + ort.env.wasm.numThreads + " thread(s)" : ""})`;
  }

  function legend(labels) { // each class's share of the pixels, in the palette of chapter 7
    const counts = new Array(card.classes.length).fill(0);
    for (let i = 0; i < labels.length; i++) counts[labels[i]]++;
    const rows = card.classes.map((name, c) => ({ name, c, share: counts[c] / labels.length }))
      .sort((a, b) => b.share - a.share);
    $("fcn-legend").innerHTML = rows.map((r) =>
      `<li><span class="fcn-swatch" style="background: rgb(${card.palette[r.c].join(",")})"></span>` +
      `${r.name}: ${(100 * r.share).toFixed(1)} %</li>`).join("");
  }

  // ---- one photo from any source -------------------------------------------------------------
  function run(blob, name) {
    queue = queue.then(async () => {
      window.fcnResult = undefined;
      setStatus("busy", `working on ${name} ...`);
      try {
        await loadModel();
        const photo = await decode(blob, name);
        const result = await segment(photo);
        window.fcnResult = result;
        draw(photo, result);
        setStatus("done", "");
      } catch (e) {
        setStatus("error", String(e.message || e).split("\n")[0]);
      }
    });
    return queue;
  }

  async function samples() { // buttons for the CamVid (or synthetic) frames the build copied
    const box = $("fcn-samples");
    try {
      const list = await (await fetch(SAMPLES_URL)).json();
      for (const s of list) {
        const b = document.createElement("button");
        b.type = "button"; b.textContent = s.label; b.className = "fcn-sample";
        b.dataset.file = s.file;
        b.onclick = async () => run(await (await fetch(new URL(s.file, SAMPLES_URL))).blob(), s.label);
        box.appendChild(b);
      }
    } catch (e) {
      box.textContent = "(no sample frames in this build)";
    }
  }

  function init() {
    const input = $("fcn-photo"), drop = $("fcn-drop");
    input.addEventListener("change", () => {
      if (input.files.length) run(input.files[0], input.files[0].name);
      input.value = ""; // the same file chosen again runs again
    });
    drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("fcn-over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("fcn-over"));
    drop.addEventListener("drop", (e) => {
      e.preventDefault(); drop.classList.remove("fcn-over");
      const f = e.dataTransfer.files[0];
      if (f) run(f, f.name);
    });
    samples();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
