"""The last room of the frame path: each face drawn on its frame, the frame encoded as JPEG bytes.

Frames are OpenCV's BGR ``uint8`` arrays ``(height, width, 3)``, drawn on in place; "jpeg" always means
the encoded bytes.
"""

from __future__ import annotations

import cv2
import numpy as np

from faces import Face

#: BGR colour of each emotion's box and label (the page's bars use the same colours).
EMOTION_COLORS: dict[str, tuple[int, int, int]] = {
    "angry": (40, 40, 220), "disgust": (40, 140, 40), "fear": (160, 60, 160), "happy": (0, 200, 255),
    "neutral": (200, 200, 200), "sad": (200, 120, 40), "surprise": (0, 140, 255),
}


def draw_faces(frame: np.ndarray, faces: list[Face]) -> np.ndarray:
    """Draw every face's box and a label ``"[id: ]<emotion> <probability>%"`` on a BGR frame in place
    (the label above the box, below it at the top edge; a face without probabilities gets its id alone, or
    no label); returns the frame."""
    height = frame.shape[0]
    scale = max(0.45, height / 900)
    thickness = max(1, round(height / 360))
    for face in faces:
        x, y, w, h = face.box
        emotion = face.emotion
        color = EMOTION_COLORS.get(emotion, (255, 255, 255))
        parts = [] if face.id is None else [f"{face.id}:"]
        if face.probabilities is not None:
            parts.append(f"{emotion} {float(np.max(face.probabilities)):.0%}")
        label = " ".join(parts)
        cv2.rectangle(frame, (x, y), (x + w, y + h), color, thickness + 1)
        if not label:
            continue
        (tw, th), baseline = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        top = y - th - baseline - 4 if y - th - baseline - 4 >= 0 else y + h
        cv2.rectangle(frame, (x, top), (x + tw + 6, top + th + baseline + 4), color, cv2.FILLED)
        cv2.putText(frame, label, (x + 3, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0),
                    thickness, cv2.LINE_AA)
    return frame


def encode_jpeg(frame: np.ndarray, quality: int = 80) -> bytes:
    """JPEG bytes of a BGR frame (``quality`` 0-100).

    Raises:
        ValueError: OpenCV cannot encode the array (not a 1- or 3-channel uint8 image).
    """
    ok, buffer = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"cannot encode a frame of shape {frame.shape} as JPEG")
    return buffer.tobytes()


def message_jpeg(text: str, size: tuple[int, int] = (640, 360)) -> bytes:
    """JPEG bytes of a dark ``size`` = ``(width, height)`` picture showing ``text``, wrapped to fit: what a
    stream shows as its last frame when its source fails."""
    width, height = size
    frame = np.full((height, width, 3), 32, np.uint8)
    lines = [""]
    for word in text.split():
        candidate = f"{lines[-1]} {word}".strip()
        if cv2.getTextSize(candidate, cv2.FONT_HERSHEY_SIMPLEX, 0.6, 1)[0][0] > width - 40 and lines[-1]:
            lines.append(word)
        else:
            lines[-1] = candidate
    for i, line in enumerate(lines):
        cv2.putText(frame, line, (20, 40 + 28 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (230, 230, 230), 1, cv2.LINE_AA)
    return encode_jpeg(frame)
