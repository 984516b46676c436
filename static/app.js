"use strict";
// The page's behaviour: live probability bars and timeline of the stream (server-sent events from
// /events) or of the visitor's own camera (frames sent to POST /api/frames, one at a time), and photo
// analysis (POST /api/predict). Everything shown is built with DOM calls, never with HTML strings.
// Settings come from the server: {emotions, colors, eventsUrl (null when there is no server stream),
// cameraUrl (null unless the page shows the visitor's camera), predictUrl, device (null unless the page
// analyses the visitor's camera itself: static/device.js)}.
const CONFIG = JSON.parse(document.getElementById("page-config").textContent);
const EMOTIONS = CONFIG.emotions;
const COLORS = CONFIG.colors;

function el(tag, props = {}, children = []) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

function note(text, className = "note") {
  return el("p", {className, textContent: text});
}

// One face: a title and a bar per emotion, the probabilities in [0, 1].
function faceCard(title, probabilities) {
  const rows = EMOTIONS.map((name) => {
    const percent = `${(100 * probabilities[name]).toFixed(1)}%`;
    const fill = el("i");
    fill.style.width = percent;
    fill.style.background = COLORS[name];
    return el("div", {className: "bar"}, [el("span", {textContent: name}), el("span", {}, [fill]),
                                          el("span", {textContent: percent})]);
  });
  return el("div", {className: "face"}, [el("strong", {textContent: title}), ...rows]);
}

// The live panel: a card per face and a one-minute timeline of the dominant expression.
function livePanel() {
  const liveFaces = document.getElementById("live-faces");
  const timeline = document.getElementById("timeline");
  const announcer = document.getElementById("live-announcer");
  const history = [];  // [time in ms, dominant emotion or null], the last minute
  let announced = null, announcedAt = 0;

  // For screen readers: the dominant expression when it changes, at most every 3 s (the bars change
  // several times a second and are not announced).
  function announce(emotion) {
    const now = Date.now();
    if (emotion === announced || now - announcedAt < 3000) return;
    announced = emotion;
    announcedAt = now;
    announcer.textContent = emotion ? `Largest face: ${emotion}` : "No face";
  }
  document.getElementById("legend").append(...EMOTIONS.map((name) => {
    const swatch = el("i");
    swatch.style.background = COLORS[name];
    return el("span", {}, [swatch, name]);
  }));

  function drawTimeline() {
    const now = Date.now(), span = 60000, context = timeline.getContext("2d");
    while (history.length && history[0][0] < now - span) history.shift();
    context.clearRect(0, 0, timeline.width, timeline.height);
    history.forEach(([t, emotion], i) => {
      if (!emotion) return;
      const end = i + 1 < history.length ? history[i + 1][0] : now;
      const x0 = (t - now + span) / span * timeline.width, x1 = (end - now + span) / span * timeline.width;
      context.fillStyle = COLORS[emotion];
      context.fillRect(x0, 0, Math.max(1, x1 - x0), timeline.height);
    });
  }

  return {
    update(faces) {
      liveFaces.replaceChildren(...(faces.length
        ? faces.map((f) => faceCard(`Face ${f.id}: ${f.emotion}`, f.probabilities))
        : [note("No face in this frame.")]));
      history.push([Date.now(), faces.length ? faces[0].emotion : null]);  // faces[0] is the largest
      drawTimeline();
      announce(faces.length ? faces[0].emotion : null);
    },
    end(message) {  // shown, and read out (the bars are not)
      liveFaces.replaceChildren(note(message, "message"));
      announcer.textContent = message;
      announced = undefined;
    },
  };
}

// The stream's live panel. When the events' connection fails (the server restarted or crashed, the
// network dropped), the page connects again, waiting 1 s, then twice as long each time (at most 5 s),
// and then asks for the MJPEG stream again too: its <img> would keep its last frame for good.
function startLivePanel() {
  const panel = livePanel();
  const stream = document.getElementById("stream");
  const streamUrl = stream && stream.getAttribute("src");
  let wait = 1000, lost = false;
  function connect() {
    const events = new EventSource(CONFIG.eventsUrl);
    events.onopen = () => {
      if (lost && streamUrl) stream.src = `${streamUrl}${streamUrl.includes("?") ? "&" : "?"}reload=${Date.now()}`;
      lost = false;
      wait = 1000;
    };
    events.onmessage = (message) => panel.update(JSON.parse(message.data).faces);
    events.onerror = () => {
      events.close();
      // an HTTP error is not told apart from a lost connection (EventSource does not say which)
      if (!lost) panel.end("The stream cannot be reached (the server stopped, or the source is gone); trying again.");
      lost = true;
      setTimeout(connect, wait);
      wait = Math.min(2 * wait, 5000);
    };
    events.addEventListener("end", (message) => {  // the source ended: its reason, and no more tries
      events.close();
      panel.end(JSON.parse(message.data).error);
    });
  }
  connect();
}

// Why the camera cannot be had, by the name of getUserMedia's error, and what to do about it.
const CAMERA_ERRORS = {
  NotAllowedError: "The camera permission was denied. Allow the camera for this site (the camera icon in the " +
    "address bar, or the browser's site settings), then reload the page.",
  SecurityError: "The camera permission was denied. Allow the camera for this site (the camera icon in the " +
    "address bar, or the browser's site settings), then reload the page.",
  NotFoundError: "No camera was found. Connect one, then reload the page.",
  OverconstrainedError: "No camera was found. Connect one, then reload the page.",
  NotReadableError: "The camera is in use by another program or tab. Close it there, then reload the page.",
};

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Boxes, ids and labels of an answer over the video, scaled from the frame sent to the video as shown.
function drawOverlay(canvas, video, answer) {
  canvas.width = video.clientWidth;
  canvas.height = video.clientHeight;
  const context = canvas.getContext("2d");
  const scale = canvas.width / answer.width;
  context.lineWidth = 3;
  context.font = "15px sans-serif";
  answer.faces.forEach((face) => {
    const [x, y, w, h] = face.box.map((v) => v * scale);
    const label = `${face.id}: ${face.emotion} ${Math.round(100 * face.probabilities[face.emotion])}%`;
    const top = Math.max(0, y - 21);
    context.strokeStyle = context.fillStyle = COLORS[face.emotion];
    context.strokeRect(x, y, w, h);
    context.fillRect(x, top, context.measureText(label).width + 8, 21);
    context.fillStyle = "#000";
    context.fillText(label, x + 4, top + 16);
  });
}

// The visitor's own camera: frames (at most 640 px wide) go to the server one at a time, each as soon as
// the previous answer has come; window.cameraStats keeps counts and request-to-answer times for tests.
async function startBrowserCamera() {
  const video = document.getElementById("camera");
  const overlay = document.getElementById("camera-overlay");
  const errorBox = document.getElementById("camera-error");
  const panel = livePanel();
  // ids: the track id of each answer's largest face (null: no face), the last 2,000 answers
  const stats = window.cameraStats = {answers: 0, latencies: [], ids: [], last: null, error: null};
  const fail = (message) => {
    stats.error = message;
    if (errorBox.textContent !== message || errorBox.hidden) {  // an alert is announced once, not per retry
      errorBox.textContent = message;
      errorBox.hidden = false;
    }
    overlay.getContext("2d").clearRect(0, 0, overlay.width, overlay.height);  // no stale boxes
  };
  if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    fail("Browsers give the camera only to pages served over https or from this machine (localhost), and " +
         "this page came over plain http from another machine. Serve the app over https behind a reverse " +
         "proxy (see the README), or open it on the machine that runs it.");
    return;
  }
  let track;
  try {
    const media = await navigator.mediaDevices.getUserMedia({video: true, audio: false});
    [track] = media.getVideoTracks();
    video.srcObject = media;
    await video.play();
  } catch (error) {
    fail(CAMERA_ERRORS[error.name] || `The camera cannot be used: ${error.message}`);
    return;
  }
  const client = crypto.randomUUID ? crypto.randomUUID()
    : Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
  const grab = document.createElement("canvas");
  for (;;) {
    if (track.readyState === "ended") {  // unplugged, permission revoked, or taken by another program
      fail("The camera stopped (unplugged, its permission withdrawn, or taken by another program). " +
           "Reload the page to start it again.");
      panel.end("The camera stopped.");
      return;
    }
    if (document.hidden) {  // a tab in the background sends nothing: its place on the server idles out
      await new Promise((resolve) => document.addEventListener("visibilitychange", resolve, {once: true}));
      continue;
    }
    const scale = Math.min(1, 640 / (video.videoWidth || 640));
    grab.width = Math.round((video.videoWidth || 640) * scale);
    grab.height = Math.round((video.videoHeight || 480) * scale);
    grab.getContext("2d").drawImage(video, 0, 0, grab.width, grab.height);
    const blob = await new Promise((resolve) => grab.toBlob(resolve, "image/jpeg", 0.8));
    const started = performance.now();
    let response, answer;
    try {
      response = await fetch(`${CONFIG.cameraUrl}?client=${client}`,
                             {method: "POST", body: blob, headers: {"Content-Type": "image/jpeg"}});
      answer = await response.json().catch(() => ({error: `the server answered ${response.status}`}));
    } catch {
      fail("The server cannot be reached; trying again.");
      await sleep(2000);
      continue;
    }
    if (!response.ok || !Array.isArray(answer.faces)) {  // an error, or an answer that is not ours (a proxy's page)
      fail(answer.error || `the server answered ${response.status}${response.ok ? " without faces" : ""}`);
      await sleep(response.status === 503 ? 5000 : 1000);
      continue;
    }
    errorBox.hidden = true;
    stats.answers += 1;
    stats.latencies.push(performance.now() - started);
    if (stats.latencies.length > 2000) stats.latencies.shift();
    const largest = answer.faces.reduce((a, f) => (a && a.box[2] * a.box[3] >= f.box[2] * f.box[3] ? a : f), null);
    stats.ids.push(largest ? (largest.id ?? null) : null);
    if (stats.ids.length > 2000) stats.ids.shift();
    stats.last = answer;
    try {
      drawOverlay(overlay, video, answer);
      panel.update(answer.faces);
    } catch (error) {  // a malformed answer: shown, and the loop goes on
      fail(`The server's answer cannot be shown: ${error.message}`);
      await sleep(1000);
    }
  }
}

function startPhotoForm() {
  const input = document.getElementById("photo-input");
  const canvas = document.getElementById("photo-canvas");
  const facesBox = document.getElementById("photo-faces");
  const errorBox = document.getElementById("photo-error");

  async function analyse(file) {
    const body = new FormData();
    body.append("image", file);
    const response = await fetch(CONFIG.predictUrl, {method: "POST", body});
    const answer = await response.json().catch(() => ({error: `the server answered ${response.status}`}));
    if (!response.ok || !Array.isArray(answer.faces)) {
      throw new Error(answer.error || `the server answered ${response.status}${response.ok ? " without faces" : ""}`);
    }
    return answer;
  }

  function draw(image, answer) {
    canvas.width = answer.width;
    canvas.height = answer.height;
    const context = canvas.getContext("2d");
    context.drawImage(image, 0, 0, answer.width, answer.height);
    context.lineWidth = Math.max(2, Math.round(answer.height / 300));
    const fontSize = Math.max(14, Math.round(answer.height / 40));
    context.font = `${fontSize}px sans-serif`;
    answer.faces.forEach((face, i) => {
      const [x, y, w, h] = face.box;
      const label = `${i + 1}: ${face.emotion}`;
      const top = Math.max(0, y - fontSize - 6);
      context.strokeStyle = context.fillStyle = COLORS[face.emotion];
      context.strokeRect(x, y, w, h);
      context.fillRect(x, top, context.measureText(label).width + 8, fontSize + 6);
      context.fillStyle = "#000";
      context.fillText(label, x + 4, top + fontSize);
    });
    canvas.style.display = "block";
  }

  let latest = 0;  // the photo chosen last: answers for earlier ones that arrive later are dropped
  input.addEventListener("change", async () => {
    const file = input.files[0];
    if (!file) return;
    const mine = ++latest;
    errorBox.textContent = "";
    facesBox.replaceChildren();
    canvas.style.display = "none";
    try {
      const answer = await analyse(file);
      if (mine !== latest) return;
      facesBox.replaceChildren(...answer.faces.map((face, i) => faceCard(`Face ${i + 1}: ${face.emotion}`,
                                                                          face.probabilities)));
      if (answer.faces.length === 0) errorBox.textContent = "No face found in this photo.";
      try {
        const image = await createImageBitmap(file, {imageOrientation: "from-image"});
        if (mine === latest) draw(image, answer);
      } catch {
        // a format the server reads but this browser cannot show (TIFF): the results stand without the picture
      }
    } catch (error) {
      if (mine !== latest) return;
      errorBox.textContent = `Cannot analyse this file: ${error.message}`;
      input.value = "";  // the same file can be chosen again
    }
  });
}

// What the page that analyses the camera in the browser (static/device.js, /?source=device) shares with this one.
window.pageParts = {livePanel, drawOverlay, CAMERA_ERRORS};

if (CONFIG.eventsUrl) startLivePanel();
if (CONFIG.cameraUrl) startBrowserCamera();
startPhotoForm();
