// The visitor's camera: opened (getUserMedia), and its frames read one by one, at most 640 pixels wide as the
// server-side camera sends them (camera.VideoCamera), the frames the page shows counted on the side.
// A leaf: it imports nothing.

const MAX_WIDTH = 640;     // frames are analysed at most this wide, as the server-side camera sends them

export async function openCamera(video) {
  const media = await navigator.mediaDevices.getUserMedia({video: true, audio: false});
  video.srcObject = media;
  await video.play();
  return media.getVideoTracks()[0];
}

// The camera's frames, each once: next() gives {image, width, height, time (s), done()}, or null when the
// camera ended. Where the browser has MediaStreamTrackProcessor (Chromium), the frames are read from the
// camera's track as they come (one kept while the analysis is busy: older ones dropped); elsewhere, the
// video's frame as it is shown (requestVideoFrameCallback, else each animation frame). The frames the page
// shows are counted on the side, in `stats` (its shown and shownFps).
export function cameraFrames(video, track, stats) {
  const shown = [];  // [when, frames shown so far] over the last second
  const onShown = (now, metadata) => {
    stats.shown = metadata.presentedFrames;
    shown.push([now, metadata.presentedFrames]);
    while (shown[0][0] < now - 1000) shown.shift();
    stats.shownFps = shown[shown.length - 1][1] - shown[0][1] + (shown.length > 1 ? 0 : 1);
    video.requestVideoFrameCallback(onShown);
  };
  if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(onShown);
  const sized = (image, width, height, time, done) => {
    const scale = Math.min(1, MAX_WIDTH / (width || MAX_WIDTH));
    return {image, width: Math.round((width || MAX_WIDTH) * scale), height: Math.round((height || 480) * scale),
            time, done};
  };
  if (typeof MediaStreamTrackProcessor === "function") {
    const reader = new MediaStreamTrackProcessor({track, maxBufferSize: 1}).readable.getReader();
    return {
      async next() {
        const {value, done} = await reader.read();
        return done ? null : sized(value, value.displayWidth, value.displayHeight, value.timestamp / 1e6,
                                   () => value.close());
      },
    };
  }
  return {
    async next() {
      await new Promise((resolve) => (video.requestVideoFrameCallback
        ? video.requestVideoFrameCallback(() => resolve()) : requestAnimationFrame(() => resolve())));
      return track.readyState === "ended" ? null
        : sized(video, video.videoWidth, video.videoHeight, performance.now() / 1000, () => {});
    },
  };
}
