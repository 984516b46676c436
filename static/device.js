// The visitor's camera analysed in this browser (/?source=device): nothing of the video leaves the page.
// The server's frame path, redone here on LiteRT.js (vendored in static/vendor/litertjs/) with the same two
// models the server runs, by the modules of static/device/: runtime.js loads the runtime and the models,
// blazeface.js finds the faces (detectors/blazeface.py), crop.js cuts, levels and lifts their 48x48 crops
// (faces.crop_faces, faces.normalize_lighting), expression.js classifies them (model.FacialExpressionModel),
// frame.js runs that path on one frame (analysis.analyze_frame), tracker.js keeps ids and smooths
// (tracking.FaceTracker), camera.js reads the camera. This module is the page's glue, as the server's live
// stream (analysis.FaceAnalyzer, analysis.annotated_stream): it reads the page's settings, runs the loop and
// shows the figures; the boxes, labels, bars and timeline are app.js's. It imports the parts; they never
// import it. window.deviceStats keeps counts and times for tests; window.deviceCheck(rgba, width, height) runs
// the frame path on one frame without tracking (benchmarks/on_device.py compares it with the server's).
import {BlazeFace} from "./device/blazeface.js";
import {cameraFrames, openCamera} from "./device/camera.js";
import {analyseFrame, classification, stages, toAnswer} from "./device/frame.js";
import {loadModels as loadRuntime} from "./device/runtime.js";
import {FaceTracker} from "./device/tracker.js";

const CONFIG = JSON.parse(document.getElementById("page-config").textContent);
const SETTINGS = CONFIG.device;
const EMOTIONS = CONFIG.emotions;
const {livePanel, drawOverlay, CAMERA_ERRORS} = window.pageParts;

const stats = window.deviceStats = {
  frames: 0, shown: 0, fps: 0, shownFps: 0, frameMs: [], stages, classified: 0, loadMs: null, firstFrameMs: null, runtime: null, backend: null,
  last: null, error: null,
};
const errorBox = document.getElementById("camera-error");
const statusLine = document.getElementById("device-status");
const overlay = document.getElementById("camera-overlay");

// A message, and the way to the server-side camera.
function fail(message) {
  stats.error = message;
  const link = Object.assign(document.createElement("a"), {href: SETTINGS.serverCameraUrl,
                                                            textContent: "your camera, analysed by the server"});
  errorBox.replaceChildren(`${message} `, "Instead, try ", link, ".");
  errorBox.hidden = false;
  statusLine.textContent = "Not analysing.";
  overlay.getContext("2d").clearRect(0, 0, overlay.width, overlay.height);
}


async function loadModels() {
  const {detector, expression, loadMs, runtime, backend} = await loadRuntime(SETTINGS);
  Object.assign(stats, {loadMs, runtime, backend});
  return {detector: new BlazeFace(detector, SETTINGS.blazeface), expression};
}

async function start() {
  const opened = performance.now();
  if (typeof WebAssembly !== "object" || typeof WebAssembly.instantiate !== "function") {
    fail("This browser cannot run WebAssembly, which the analysis on this device needs.");
    return;
  }
  if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    fail("Browsers give the camera only to pages served over https or from this machine (localhost), and " +
         "this page came over plain http from another machine.");
    return;
  }
  const video = document.getElementById("camera");
  const panel = livePanel();
  const models = loadModels();
  models.catch(() => {});  // reported below, after the camera's answer
  let track;
  try {
    track = await openCamera(video);
  } catch (error) {
    fail(CAMERA_ERRORS[error.name] || `The camera cannot be used: ${error.message}`);
    panel.end("No camera.");
    return;
  }
  let loaded;
  try {
    loaded = await models;
  } catch (error) {
    fail(`The models cannot be run in this browser (${error.message || error}).`);
    panel.end("The models did not load.");
    return;
  }
  statusLine.textContent = `Models loaded in ${(stats.loadMs / 1000).toFixed(1)} s; ${stats.runtime}, ` +
    `${stats.backend}. Analysing…`;
  window.deviceCheck = async (rgba, width, height) => (await analyseFrame(loaded, SETTINGS, rgba, width, height))
    .map((f) => ({box: f.box, score: f.score, roll: f.roll, crop: Array.from(f.crop),
                  probabilities: Array.from(f.probabilities)}));
  const tracker = new FaceTracker(SETTINGS), frames = cameraFrames(video, track, stats);
  const grab = document.createElement("canvas");
  const context = grab.getContext("2d", {willReadFrequently: true});
  const times = [];  // when the last second's frames were analysed
  let previous = null, lastStatus = 0, lastPanel = 0, sinceSearch = Infinity, found = [];
  // As the server's live streams (analysis.FaceAnalyzer's classify budget): when classifying every face would
  // take more than half a frame period, a tracked face is classified on every k-th frame only (k at most 8,
  // taking turns by track id; new faces at once), and keeps its track's smoothed probabilities in between.
  let secondsPerFace = 0, framePeriod = 1 / 30;
  const choose = (dt) => (faces) => {
    const cost = secondsPerFace * faces.length, budget = 0.5 * framePeriod;
    if (cost <= budget) return faces.map(() => true);
    const every = Math.min(8, Math.ceil(cost / budget));
    return tracker.trackIds(faces.map((f) => f.box), dt).map((id) => id === null || (id + stats.frames) % every === 0);
  };
  for (;;) {
    const frame = track.readyState === "ended" ? null : await frames.next();
    if (frame === null) {
      fail("The camera stopped (unplugged, its permission withdrawn, or taken by another program). " +
           "Reload the page to start it again.");
      panel.end("The camera stopped.");
      return;
    }
    if (document.hidden) {  // a tab in the background analyses nothing
      frame.done();
      await new Promise((resolve) => document.addEventListener("visibilitychange", resolve, {once: true}));
      previous = null;
      continue;
    }
    const begun = performance.now(), {width, height} = frame;
    if (grab.width !== width || grab.height !== height) Object.assign(grab, {width, height});
    context.drawImage(frame.image, 0, 0, width, height);
    frame.done();
    const rgba = context.getImageData(0, 0, width, height).data;
    const dt = previous === null ? 0 : Math.max(0, frame.time - previous);  // the camera's time
    previous = frame.time;
    if (dt > 0 && dt < 1) framePeriod = 0.9 * framePeriod + 0.1 * dt;
    let faces;
    try {  // the whole frame searched every detectEvery-th frame, and while no face is followed
      const search = sinceSearch + 1 >= SETTINGS.detectEvery || !found.length;
      found = await analyseFrame(loaded, SETTINGS, rgba, width, height, search ? null : found.map((f) => f.box), choose(dt));
      sinceSearch = search ? 0 : sinceSearch + 1;
      if (classification.count > 0) {
        const seconds = classification.seconds / classification.count;
        secondsPerFace = stats.classified ? 0.8 * secondsPerFace + 0.2 * seconds : seconds;
        stats.classified += classification.count;
      }
      faces = tracker.update(found, dt);
    } catch (error) {
      fail(`A frame cannot be analysed: ${error.message || error}`);
      panel.end("The analysis stopped.");
      return;
    }
    const answer = toAnswer(faces, width, height, EMOTIONS);
    drawOverlay(overlay, video, answer);
    if (begun - lastPanel >= 100) {  // the bars and the timeline at most 10 times a second
      lastPanel = begun;
      panel.update(answer.faces);
    }
    const done = performance.now();
    stats.frames += 1;
    stats.last = answer;
    stats.frameMs.push(done - begun);
    if (stats.frameMs.length > 300) stats.frameMs.shift();
    if (stats.firstFrameMs === null) stats.firstFrameMs = done - opened;
    times.push(done);
    while (times[0] < done - 1000) times.shift();
    stats.fps = times.length;
    if (done - lastStatus > 500) {  // the figures twice a second
      lastStatus = done;
      const recent = stats.frameMs.slice(-30).sort((p, q) => p - q);
      statusLine.textContent = `Analysing on this device: ${stats.fps} frames/s ` +
        `(the camera shows ${stats.shownFps || "?"}), ` +
        `${recent[recent.length >> 1].toFixed(1)} ms per frame; ${stats.runtime}, ${stats.backend}; ` +
        `models loaded in ${(stats.loadMs / 1000).toFixed(1)} s. Nothing is sent to the server.`;
    }
  }
}

start().catch((error) => fail(`The analysis stopped: ${error.message || error}`));
