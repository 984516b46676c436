"""POST /api/predict and images.decode_image: formats, orientation, and every kind of bad upload."""

import io
import struct
import zlib

import numpy as np
import pytest
from helpers import ASTRONAUT_FACE, MEDIA_DIR, astronaut_bgr, read_jpeg_frames, requires_media
from PIL import Image

from faces import box_iou as iou
from images import ImageError, decode_image
from model import EMOTIONS_LIST


def astronaut_pil() -> Image.Image:
    return Image.fromarray(astronaut_bgr()[..., ::-1])


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header (with a correct CRC) claims ``width`` x ``height`` pixels."""
    data = bytearray(encode(Image.new("L", (1, 1)), "PNG"))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4:ihdr + 12] = struct.pack(">II", width, height)
    data[ihdr + 17:ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr:ihdr + 17])))
    return bytes(data)


def sixteen_bit_png() -> bytes:
    gray = np.asarray(astronaut_pil().convert("L"), dtype=np.uint16) * 257
    return encode(Image.fromarray(gray), "PNG")


GOOD_UPLOADS = {
    "jpeg": lambda: encode(astronaut_pil(), "JPEG", quality=90),
    "png": lambda: encode(astronaut_pil(), "PNG"),
    "webp": lambda: encode(astronaut_pil(), "WEBP", quality=90),
    "grayscale png": lambda: encode(astronaut_pil().convert("L"), "PNG"),
    "rgba png": lambda: encode(astronaut_pil().convert("RGBA"), "PNG"),
    "16-bit png": sixteen_bit_png,
    "cmyk jpeg": lambda: encode(astronaut_pil().convert("CMYK"), "JPEG", quality=90),
    # a phone's JPEG with a second picture indexed (Multi-Picture Format): Pillow calls it MPO
    "multi-picture jpeg": lambda: encode(astronaut_pil(), "MPO", save_all=True,
                                         append_images=[Image.new("RGB", (160, 120), (90, 90, 90))]),
    "32-bit float tiff": lambda: encode(Image.fromarray(np.asarray(astronaut_pil().convert("L"), np.float32) / 255),
                                        "TIFF"),  # a scientific camera's floats in [0, 1]
}


@pytest.mark.parametrize("kind", GOOD_UPLOADS)
def test_every_format_finds_the_face(client, kind):
    response = client.post("/api/predict", data={"image": (io.BytesIO(GOOD_UPLOADS[kind]()), "face.img")})
    assert response.status_code == 200, response.get_json()
    answer = response.get_json()
    assert (answer["width"], answer["height"]) == (512, 512)
    assert len(answer["faces"]) == 1
    face = answer["faces"][0]
    assert iou(face["box"], ASTRONAUT_FACE) > 0.6
    assert 0.5 <= face["score"] <= 1  # BlazeFace's confidence, at least the default --min-score
    assert set(face["probabilities"]) == set(EMOTIONS_LIST)
    assert face["emotion"] == max(face["probabilities"], key=face["probabilities"].get)


def test_raw_body_with_an_image_content_type(client):
    response = client.post("/api/predict", data=GOOD_UPLOADS["png"](), content_type="image/png")
    assert response.status_code == 200
    assert len(response.get_json()["faces"]) == 1


def test_exif_orientation_is_applied():
    """A photo stored sideways with EXIF orientation 6 (rotate 90 degrees clockwise) decodes upright."""
    sideways = astronaut_pil().transpose(Image.Transpose.ROTATE_90)  # what a phone stores
    exif = Image.Exif()
    exif[0x0112] = 6
    decoded = decode_image(encode(sideways, "JPEG", exif=exif.tobytes(), quality=95))
    frame = decoded.frame
    assert (decoded.width, decoded.height) == (512, 512)
    reference = astronaut_bgr().astype(int)
    assert np.abs(frame.astype(int) - reference).mean() < 8


def test_no_face_gives_an_empty_list(client):
    blank = encode(Image.new("RGB", (320, 240), (120, 120, 120)), "PNG")
    answer = client.post("/api/predict", data={"image": (io.BytesIO(blank), "blank.png")}).get_json()
    assert answer == {"width": 320, "height": 240, "faces": []}


@pytest.mark.parametrize("upload, status, message", [
    (b"", 400, "empty"),
    (b"just some text, not an image", 400, "not an image"),
    (GOOD_UPLOADS["png"]()[:3000], 400, "cannot be decoded"),  # truncated
    (GOOD_UPLOADS["jpeg"]()[:40], 400, "cannot be decoded"),  # cut inside the header
    (GOOD_UPLOADS["webp"]()[:60], 400, "cannot be decoded"),
    (encode(astronaut_pil(), "BMP")[:40], 400, "cannot be decoded"),
    (png_claiming(100_000, 100_000), 413, "limit"),  # a decompression bomb
    (encode(Image.new("L", (1200, 1000)), "PNG"), 413, "1200x1000"),  # over the test app's 1 MP limit
    (encode(Image.new("L", (1, 900)), "PNG"), 200, None),  # a thin sliver: no face, no crash
    (encode(Image.new("L", (1000, 20)), "PNG"), 200, None),
])
def test_bad_and_odd_uploads_get_a_clear_answer(app, upload, status, message):
    app.config["MAX_IMAGE_PIXELS"] = 1_000_000
    response = app.test_client().post("/api/predict", data={"image": (io.BytesIO(upload), "upload.png")})
    assert response.status_code == status
    if message is None:
        assert response.get_json()["faces"] == []
    else:
        assert message in response.get_json()["error"]


def test_request_over_the_size_limit_is_a_413(app):
    app.config["MAX_CONTENT_LENGTH"] = 100_000
    response = app.test_client().post("/api/predict", data={"image": (io.BytesIO(b"x" * 200_000), "big.png")})
    assert response.status_code == 413
    assert "error" in response.get_json()


@pytest.mark.parametrize("kwargs, status", [
    ({"data": {"photo": (io.BytesIO(b"x"), "a.png")}}, 400),  # wrong field name
    ({"data": b"text", "content_type": "text/plain"}, 415),
    ({"json": {"image": "base64?"}}, 415),
])
def test_requests_without_an_image(client, kwargs, status):
    response = client.post("/api/predict", **kwargs)
    assert response.status_code == status
    assert response.get_json()["error"]


def test_get_is_not_allowed(client):
    assert client.get("/api/predict").status_code == 405


def test_decode_image_raises_image_error():
    with pytest.raises(ImageError, match="empty"):
        decode_image(b"")


def test_the_hog_detector_serves_photos_and_streams(make_app, face_video):
    client = make_app(DETECTOR="hog").test_client()
    response = client.post("/api/predict", data=GOOD_UPLOADS["png"](), content_type="image/png")
    assert response.status_code == 200
    assert max(iou(face["box"], ASTRONAUT_FACE) for face in response.get_json()["faces"]) > 0.5
    assert all(face["score"] is None for face in response.get_json()["faces"])  # HOG gives no score
    frames = read_jpeg_frames(client.get(f"/video_feed?source={face_video[0].name}", buffered=False), 3)
    assert len(frames) == 3 and all(f is not None for f in frames)


@pytest.mark.parametrize("detector", ["yunet", ""])
def test_an_unknown_detector_stops_the_start(make_app, detector):
    with pytest.raises(ValueError, match="unknown face detector"):
        make_app(DETECTOR=detector)


@requires_media
@pytest.mark.parametrize("name, expected", [
    ("faces/fr_two_people.jpg", 2), ("faces/fr_obama.jpg", 1), ("faces/fer_justin.jpg", 1),
    ("noface/skimage_coffee.png", 0), ("noface/fer_no-faces.jpg", 0),
])
def test_real_photos_through_the_api(client, name, expected):
    path = MEDIA_DIR / name
    response = client.post("/api/predict", data={"image": (io.BytesIO(path.read_bytes()), path.name)})
    assert response.status_code == 200
    faces = response.get_json()["faces"]
    assert len(faces) >= expected if expected else faces == []
    if name.endswith(("obama.jpg", "justin.jpg")):  # smiling
        assert max(faces, key=lambda f: f["box"][2])["emotion"] == "happy"


def test_the_openapi_description_matches_real_answers(client):
    import jsonschema

    spec = client.get("/api/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    schemas = spec["components"]["schemas"]  # the static document names the model's seven labels
    assert schemas["Face"]["properties"]["emotion"]["enum"] == list(EMOTIONS_LIST)
    assert schemas["Probabilities"]["required"] == list(EMOTIONS_LIST)
    operation = spec["paths"]["/api/predict"]["post"]
    assert set(operation["requestBody"]["content"]) == {"multipart/form-data", "image/*"}
    assert {"200", "400", "413", "415"} <= set(operation["responses"])

    def check(response, status):
        ref = operation["responses"][str(status)]["content"]["application/json"]["schema"]["$ref"]
        jsonschema.validate(response.get_json(), {"$ref": ref, "components": spec["components"]})
        assert response.status_code == status

    check(client.post("/api/predict", data=GOOD_UPLOADS["png"](), content_type="image/png"), 200)
    check(client.post("/api/predict", data=b"not an image", content_type="image/png"), 400)
    check(client.post("/api/predict", data=b"{}", content_type="application/json"), 415)
    with pytest.raises(jsonschema.ValidationError):  # the schema does constrain the answer
        jsonschema.validate({"width": 1, "height": 1, "faces": [{"box": [1, 2, 3]}]},
                            {"$ref": "#/components/schemas/Prediction", "components": spec["components"]})


@pytest.mark.parametrize("min_score", [1.5, -0.1, "0.5", True, None])
def test_a_bad_min_score_stops_the_start(make_app, min_score):
    with pytest.raises(ValueError, match="min_score"):  # the old config key still reaches AnalysisSettings
        make_app(MIN_SCORE=min_score)


def test_min_score_filters_the_api_faces(make_app):
    answer = make_app().test_client().post("/api/predict", data=GOOD_UPLOADS["png"](), content_type="image/png")
    score = answer.get_json()["faces"][0]["score"]
    stricter = make_app(MIN_SCORE=min(1.0, score + 0.01)).test_client()
    assert stricter.post("/api/predict", data=GOOD_UPLOADS["png"](), content_type="image/png").get_json()["faces"] == []


def test_a_large_jpeg_is_decoded_small_and_its_boxes_scaled_back(client):
    """A 3072x3072 JPEG (9.4 MP) is decoded at half its sides (Pillow's DCT scaling) for the search, and
    the face's box is given in the uploaded image's pixels."""
    big = astronaut_pil().resize((3072, 3072), Image.Resampling.BICUBIC)
    data = encode(big, "JPEG", quality=85)
    decoded = decode_image(data, working_pixels=4_000_000)
    assert (decoded.width, decoded.height) == (3072, 3072)
    assert decoded.frame.shape[0] * decoded.frame.shape[1] <= 4_000_000 * 1.01
    answer = client.post("/api/predict", data=data, content_type="image/jpeg").get_json()
    assert (answer["width"], answer["height"]) == (3072, 3072)
    assert iou(answer["faces"][0]["box"], [v * 6 for v in ASTRONAUT_FACE]) > 0.5


def test_an_image_over_the_pixel_limit_is_refused_before_decoding(client):
    header_only = encode(Image.new("L", (4900, 5000)), "JPEG", quality=1)[:600]  # the header declares 24.5 MP
    response = client.post("/api/predict", data=header_only, content_type="image/jpeg")
    assert response.status_code == 413 and "12,000,000" in response.get_json()["error"]
