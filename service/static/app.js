// poseserve demo page: an image (POST /v1/pose), a video (POST /v1/pose/video, NDJSON read as it streams) or the
// webcam (the /v1/pose/stream WebSocket, one frame in flight), skeletons drawn on #overlay. No dependencies, no build
// step. Every URL is relative to the page's <base href> (the server writes its root_path there), so the page works
// behind a proxy prefix.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const ui = {
    status: $("status"), file: $("file"), webcam: $("webcam"), stop: $("stop"), threshold: $("threshold"),
    thresholdValue: $("threshold-value"), detInterval: $("det-interval"), maxFrames: $("max-frames"),
    smooth: $("smooth"), flip: $("flip-test"), keyBox: $("key-box"), key: $("api-key"), picture: $("picture"),
    video: $("video"), overlay: $("overlay"), persons: $("person-count"), trackIds: $("track-ids"),
    framesDrawn: $("frames-drawn"), timings: $("timings"), models: $("models"),
  };
  // Colours of inference/render.py: left side, right side, the rest; boxes; track palette.
  const LEFT = "rgb(0,255,0)", RIGHT = "rgb(255,128,0)", CENTER = "rgb(51,153,255)", BOX = "rgb(0,200,0)";
  const PALETTE = ["FF3838", "FF9D97", "FF701F", "FFB21D", "CFD231", "48F90A", "92CC17", "3DDB86", "1A9334",
    "00D4BB", "2C99A8", "00C2FF", "344593", "6473FF", "0018EC", "8438FF", "520085", "CB38FF", "FF95C8", "FF37C7"];
  const VIDEO_EXT = /\.(mp4|m4v|mov|mkv|webm|avi)$/i;

  let apiKey = null; // only in this variable: never stored
  let pending = null; // the action to run again once an API key is given
  let job = 0; // incremented by each new action: older ones stop updating the page
  let names = [], skeleton = [], sides = [];
  let videoResults = [];
  let cam = null; // the webcam session
  const demo = (window.poseDemo = {
    last: null, header: null, summary: null, models: null, framesDrawn: 0, framesAnswered: 0, framesSent: 0,
    persons: 0, personsTotal: 0, trackIds: [], errors: 0, state: "loading",
  });

  // A WebSocket URL for a path relative to the page's base (http -> ws, https -> wss).
  function wsURL(path) {
    const url = new URL(path, document.baseURI);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    return url.href;
  }

  function setState(state, text) {
    document.body.dataset.state = demo.state = state;
    ui.status.textContent = text;
  }
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const authHeaders = () => (apiKey ? { Authorization: "Bearer " + apiKey } : {});
  const retryAfter = (res) => Math.max(1, Number(res.headers.get("Retry-After")) || 2);

  class HttpError extends Error {
    constructor(res, body) {
      super((body && body.message) || res.statusText || "HTTP " + res.status);
      this.status = res.status;
      this.res = res;
    }
  }
  async function errorOf(res) {
    let body = null;
    try { body = await res.json(); } catch (e) { /* not JSON */ }
    return new HttpError(res, body);
  }

  function setNames(list) {
    names = list || [];
    sides = names.map((n) => (/^left/i.test(n) ? LEFT : /^right/i.test(n) ? RIGHT : CENTER));
  }

  // ---- readiness and models ----
  async function waitReady() {
    for (;;) {
      let res;
      try { res = await fetch("readyz", { cache: "no-store" }); } catch (e) {
        setState("error", "Server unreachable; retrying…");
        await sleep(2000);
        continue;
      }
      if (res.ok) return;
      const err = await errorOf(res);
      const wait = res.headers.get("Retry-After") ? retryAfter(res) : 5;
      setState(res.status === 503 ? "loading" : "error", `Models loading: ${err.message} (checking again in ${wait} s)`);
      await sleep(wait * 1000);
    }
  }

  async function loadModels() {
    const res = await fetch("v1/models", { headers: authHeaders() });
    if (!res.ok) throw await errorOf(res);
    const m = (demo.models = await res.json());
    setNames(m.keypoints.keypoint_names);
    skeleton = m.keypoints.skeleton || [];
    const prov = (r) => (r && r.runtime && r.runtime.active_providers ? ` (${r.runtime.active_providers.join(", ")})` : "");
    const parts = [];
    if (m.detector) parts.push(`detector ${m.detector.name}${prov(m.detector)}`);
    parts.push(`pose ${m.pose.name}${prov(m.pose)}`);
    ui.models.textContent = parts.join(" · ");
    ui.flip.textContent = m.pose.flip_test ? "on" : "off";
  }

  async function start() {
    setState("loading", "Models loading…");
    await waitReady();
    await guarded(async () => {
      await loadModels();
      setState("ready", "Ready: choose an image or a video, or start the webcam.");
    }, start);
  }

  // Runs an action; a 401 asks for a key (then runs `again`), a 503 with Retry-After waits and retries it.
  async function guarded(action, again, tries = 5) {
    try {
      await action();
    } catch (err) {
      if (err.status === 401) {
        pending = again;
        ui.keyBox.hidden = false;
        setState("error", `${err.message}. Enter an API key below.`);
        ui.key.focus();
      } else if (err.status === 503 && err.res && err.res.headers.get("Retry-After") && tries > 0) {
        const wait = retryAfter(err.res);
        setState("busy", `Server busy: ${err.message}. Retrying in ${wait} s…`);
        const mine = job;
        await sleep(wait * 1000);
        if (mine === job) await guarded(action, again, tries - 1);
      } else {
        setState("error", `Error: ${err.message}`);
      }
    }
  }

  // ---- drawing ----
  function sizeOverlay(w, h) {
    if (ui.overlay.width !== w) ui.overlay.width = w;
    if (ui.overlay.height !== h) ui.overlay.height = h;
  }

  function draw(persons) {
    const c = ui.overlay, g = c.getContext("2d");
    g.clearRect(0, 0, c.width, c.height);
    const thr = Number(ui.threshold.value);
    const t = Math.max(2, Math.round(Math.max(c.width, c.height) / 300));
    g.lineCap = "round";
    g.font = `${6 * t + 4}px system-ui, sans-serif`;
    g.textBaseline = "bottom";
    for (const p of persons) {
      const [x1, y1, x2, y2] = p.bbox;
      const color = p.track_id != null ? "#" + PALETTE[p.track_id % PALETTE.length] : BOX;
      g.strokeStyle = color;
      g.lineWidth = t;
      g.strokeRect(x1, y1, x2 - x1, y2 - y1);
      const label = (p.track_id != null ? `id ${p.track_id} ` : "") + p.score.toFixed(2);
      const tw = g.measureText(label).width + 2 * t, th = 6 * t + 6;
      const ty = y1 - th < 0 ? y1 + th : y1;
      g.fillStyle = color;
      g.fillRect(x1, ty - th, tw, th);
      g.fillStyle = "#000";
      g.fillText(label, x1 + t, ty - 1);
    }
    for (const p of persons) {
      const k = p.keypoints;
      g.lineWidth = t;
      for (const [a, b] of skeleton) {
        if (!k[a] || !k[b] || k[a][2] < thr || k[b][2] < thr) continue;
        g.strokeStyle = sides[a] === sides[b] ? sides[a] : CENTER;
        g.beginPath();
        g.moveTo(k[a][0], k[a][1]);
        g.lineTo(k[b][0], k[b][1]);
        g.stroke();
      }
    }
    for (const p of persons) {
      p.keypoints.forEach(([x, y, s], i) => {
        if (s < thr) return;
        g.fillStyle = sides[i] || CENTER;
        g.beginPath();
        g.arc(x, y, t + 1, 0, 2 * Math.PI);
        g.fill();
      });
    }
    demo.framesDrawn++;
    ui.framesDrawn.textContent = demo.framesDrawn;
  }

  function showResult(r) {
    demo.last = r;
    demo.persons = r.persons.length;
    demo.personsTotal += r.persons.length;
    ui.persons.textContent = r.persons.length;
    const ids = new Set(demo.trackIds);
    for (const p of r.persons) if (p.track_id != null) ids.add(p.track_id);
    if (ids.size !== demo.trackIds.length) {
      demo.trackIds = [...ids].sort((a, b) => a - b);
      ui.trackIds.textContent = demo.trackIds.join(", ");
    }
    draw(r.persons);
  }

  function showTimings(t, extra) {
    const parts = Object.entries(t || {}).map(([k, v]) => `${k} ${Number(v).toFixed(1)} ms`);
    if (extra) parts.push(extra);
    ui.timings.textContent = parts.join(" · ") || "–";
  }

  function reset(kind) {
    job++;
    stopWebcam(false);
    Object.assign(demo, { last: null, header: null, summary: null, framesDrawn: 0, framesAnswered: 0,
      framesSent: 0, persons: 0, personsTotal: 0, trackIds: [], kind });
    videoResults = [];
    ui.persons.textContent = "0";
    ui.trackIds.textContent = "–";
    ui.framesDrawn.textContent = "0";
    ui.timings.textContent = "–";
    const g = ui.overlay.getContext("2d");
    g.clearRect(0, 0, ui.overlay.width, ui.overlay.height);
    ui.picture.hidden = kind !== "image";
    ui.video.hidden = kind === "image";
    return job;
  }

  function streamOptions() {
    const p = new URLSearchParams();
    const di = parseInt(ui.detInterval.value, 10);
    if (di >= 1) p.set("det_interval", di);
    p.set("smooth", ui.smooth.checked);
    return p;
  }

  // ---- image: POST /pose ----
  async function runImage(file) {
    const mine = reset("image");
    if (ui.picture.src) URL.revokeObjectURL(ui.picture.src);
    ui.picture.src = URL.createObjectURL(file);
    const action = async () => {
      setState("busy", `Sending ${file.name}…`);
      const body = new FormData();
      body.append("file", file, file.name);
      const res = await fetch("v1/pose", { method: "POST", body, headers: authHeaders() });
      if (!res.ok) throw await errorOf(res);
      const r = await res.json();
      if (mine !== job) return;
      setNames(r.keypoint_names);
      sizeOverlay(r.width, r.height);
      showResult(r);
      showTimings(r.timings_ms);
      setState("ready", `${file.name}: ${r.persons.length} person(s).`);
    };
    await guarded(action, () => runImage(file));
  }

  // ---- video: POST /pose/video, NDJSON ----
  async function runVideo(file) {
    const mine = reset("video");
    const v = ui.video;
    v.srcObject = null;
    if (v.src) URL.revokeObjectURL(v.src);
    v.src = URL.createObjectURL(file);
    v.controls = true;
    const action = async () => {
      setState("busy", `Sending ${file.name}…`);
      const q = streamOptions();
      const mf = parseInt(ui.maxFrames.value, 10);
      if (mf >= 1) q.set("max_frames", mf);
      const body = new FormData();
      body.append("file", file, file.name);
      const res = await fetch("v1/pose/video?" + q, { method: "POST", body, headers: authHeaders() });
      if (!res.ok) throw await errorOf(res);
      const reader = res.body.getReader();
      const dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { done, value } = await reader.read();
        if (mine !== job) { reader.cancel(); return; }
        if (value) buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, i).trim();
          buf = buf.slice(i + 1);
          if (line) videoLine(JSON.parse(line), file);
        }
        if (done) break;
      }
    };
    await guarded(action, () => runVideo(file));
  }

  function videoLine(m, file) {
    if (m.type === "video") {
      demo.header = m;
      setNames(m.keypoint_names);
      sizeOverlay(m.width, m.height);
      setState("streaming", `${file.name}: ${m.width}×${m.height}, processing…`);
    } else if (m.type === "frame") {
      videoResults.push(m);
      demo.framesAnswered++;
      showResult(m);
      if (ui.video.paused && ui.video.readyState >= 1) ui.video.currentTime = m.time_s;
      ui.status.textContent = `${file.name}: frame ${m.frame}, ${m.persons.length} person(s)…`;
    } else if (m.type === "summary") {
      demo.summary = m;
      showTimings(m.timings_ms, m.fps != null ? `${Number(m.fps).toFixed(1)} frames/s` : "");
      setState("ready", `${file.name}: ${demo.framesAnswered} frame(s), ${demo.trackIds.length} track(s). Play the video to see them.`);
    } else if (m.type === "error") {
      setState("error", `Error: ${m.message}`);
    }
  }

  // While the video plays, draw the result nearest its time.
  function followVideo() {
    const v = ui.video;
    if (demo.kind === "video" && !v.paused && videoResults.length) {
      let best = videoResults[0];
      for (const r of videoResults) if (Math.abs(r.time_s - v.currentTime) < Math.abs(best.time_s - v.currentTime)) best = r;
      if (best !== demo.last) showResult(best);
    }
    requestAnimationFrame(followVideo);
  }

  // ---- webcam: the /pose/stream WebSocket ----
  async function startWebcam() {
    const mine = reset("webcam");
    let media;
    try {
      media = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } } });
    } catch (e) {
      setState("error", `Webcam not available: ${e.message}`);
      return;
    }
    if (mine !== job) { media.getTracks().forEach((t) => t.stop()); return; }
    const v = ui.video;
    if (v.src) { URL.revokeObjectURL(v.src); v.removeAttribute("src"); }
    v.controls = false;
    v.srcObject = media;
    await v.play().catch(() => {});
    cam = { media, ws: null, grab: document.createElement("canvas"), retries: 0, timer: null, waiting: false, stopped: false };
    ui.webcam.disabled = true;
    ui.stop.disabled = false;
    // 401 cannot be read from a refused WebSocket: ask the models endpoint first.
    await guarded(async () => { await loadModels(); connect(cam); }, startWebcam);
  }

  function connect(c) {
    if (c.stopped) return;
    const q = streamOptions();
    if (apiKey) q.set("api_key", apiKey);
    const ws = (c.ws = new WebSocket(wsURL(`v1/pose/stream?${q}`)));
    let opened = false;
    setState("busy", "Connecting the webcam stream…");
    ws.onopen = () => {
      opened = true;
      c.retries = 0;
      setState("streaming", "Webcam: streaming.");
      sendFrame(c);
    };
    ws.onmessage = (ev) => {
      const m = JSON.parse(ev.data);
      if (m.type === "frame") {
        demo.framesAnswered++;
        showResult(m);
        showTimings(null, `latency ${m.latency_ms.toFixed(0)} ms · dropped ${m.dropped_frames}`);
        if (demo.state !== "streaming") setState("streaming", "Webcam: streaming.");
      } else if (m.type === "error") {
        demo.errors++;
        setState("error", `Frame error: ${m.message}`);
      }
      c.waiting = false;
      clearTimeout(c.timer);
      requestAnimationFrame(() => sendFrame(c));
    };
    ws.onclose = (ev) => {
      if (c.stopped || c.ws !== ws) return;
      const wait = Math.min(30, 2 ** c.retries++);
      const why = opened ? "Connection lost" : "Could not connect (server busy or not ready)";
      setState("error", `${why}${ev.reason ? ": " + ev.reason : ""}. Reconnecting in ${wait} s…`);
      setTimeout(() => connect(c), wait * 1000);
    };
  }

  // Latest-frame: the next frame goes when the previous one is answered (or after a second without an answer).
  function sendFrame(c) {
    const ws = c.ws, v = ui.video;
    if (c.stopped || !ws || ws.readyState !== WebSocket.OPEN || c.waiting) return;
    if (!v.videoWidth) { setTimeout(() => sendFrame(c), 100); return; }
    const scale = Math.min(1, 640 / v.videoWidth);
    const w = Math.round(v.videoWidth * scale), h = Math.round(v.videoHeight * scale);
    c.grab.width = w;
    c.grab.height = h;
    c.grab.getContext("2d").drawImage(v, 0, 0, w, h);
    c.waiting = true;
    c.grab.toBlob((blob) => {
      if (c.stopped || ws.readyState !== WebSocket.OPEN) return;
      sizeOverlay(w, h);
      ws.send(blob);
      demo.framesSent++;
      c.timer = setTimeout(() => { c.waiting = false; sendFrame(c); }, 1000);
    }, "image/jpeg", 0.8);
  }

  function stopWebcam(say = true) {
    const c = cam;
    if (!c) return;
    cam = null;
    c.stopped = true;
    clearTimeout(c.timer);
    if (c.ws) c.ws.close(1000);
    c.media.getTracks().forEach((t) => t.stop());
    ui.video.srcObject = null;
    ui.webcam.disabled = false;
    ui.stop.disabled = true;
    if (say) setState("ready", "Webcam stopped.");
  }

  // ---- controls ----
  ui.file.addEventListener("change", () => {
    const f = ui.file.files[0];
    if (!f) return;
    if (f.type.startsWith("video/") || VIDEO_EXT.test(f.name)) runVideo(f);
    else runImage(f);
  });
  ui.webcam.addEventListener("click", startWebcam);
  ui.stop.addEventListener("click", () => { job++; stopWebcam(); });
  ui.threshold.addEventListener("input", () => {
    ui.thresholdValue.textContent = Number(ui.threshold.value).toFixed(2);
    if (demo.last) { demo.framesDrawn--; draw(demo.last.persons); }
  });
  const sendOptions = () => {
    if (!cam || !cam.ws || cam.ws.readyState !== WebSocket.OPEN) return;
    const di = parseInt(ui.detInterval.value, 10);
    cam.ws.send(JSON.stringify({ type: "options", smooth: ui.smooth.checked, det_interval: di >= 1 ? di : null }));
  };
  ui.detInterval.addEventListener("change", sendOptions);
  ui.smooth.addEventListener("change", sendOptions);
  ui.keyBox.addEventListener("submit", (ev) => {
    ev.preventDefault();
    apiKey = ui.key.value.trim() || null;
    ui.keyBox.hidden = true;
    const again = pending;
    pending = null;
    if (again) again();
  });

  ui.picture.addEventListener("error", () => { ui.picture.hidden = true; });
  requestAnimationFrame(followVideo);
  start();
})();
