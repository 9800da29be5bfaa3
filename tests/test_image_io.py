"""faceops.image_io: every documented conversion and every error path."""

import cv2
import numpy as np
import pytest

from faceops.errors import FaceopsError, ImageReadError, VideoOpenError
from faceops.image_io import iter_images, iter_video_frames, list_images, read_image, to_bgr_uint8, VideoReader


def write(path, img):
    assert cv2.imwrite(str(path), img)
    return path


def test_colour_jpeg_reads_as_bgr_uint8(tmp_path):
    img = np.zeros((20, 30, 3), np.uint8)
    img[..., 2] = 200  # red in BGR
    out = read_image(write(tmp_path / "a.png", img))
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, img)


def test_missing_file_names_it(tmp_path):
    with pytest.raises(ImageReadError, match="nope.jpg: no such file"):
        read_image(tmp_path / "nope.jpg")


def test_empty_file(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageReadError, match=r"empty.jpg: the file is empty"):
        read_image(tmp_path / "empty.jpg")


def test_not_an_image(tmp_path):
    (tmp_path / "notes.jpg").write_text("this is not a JPEG")
    with pytest.raises(ImageReadError, match="notes.jpg: not a readable image"):
        read_image(tmp_path / "notes.jpg")


def test_truncated_jpeg(tmp_path):
    ok, data = cv2.imencode(".jpg", np.full((64, 64, 3), 128, np.uint8))
    (tmp_path / "cut.jpg").write_bytes(data.tobytes()[:20])
    with pytest.raises(ImageReadError, match="cut.jpg"):
        read_image(tmp_path / "cut.jpg")


def test_directory_is_not_an_image(tmp_path):
    with pytest.raises(ImageReadError, match="is a directory"):
        read_image(tmp_path)


def test_grayscale_becomes_three_equal_channels(tmp_path):
    gray = np.arange(200, dtype=np.uint8).reshape(10, 20)
    out = read_image(write(tmp_path / "g.png", gray))
    assert out.shape == (10, 20, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], gray)


def test_rgba_is_composited_over_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = (10, 20, 30)
    rgba[0, 0, 3] = 255  # opaque: keeps its colour
    rgba[0, 1, 3] = 0  # transparent: white
    rgba[0, 2, 3] = 128  # half: halfway to white
    out = read_image(write(tmp_path / "t.png", rgba))
    np.testing.assert_array_equal(out[0, 0], (10, 20, 30))
    np.testing.assert_array_equal(out[0, 1], (255, 255, 255))
    expected = np.round(np.array([10, 20, 30]) * 128 / 255 + 255 * (1 - 128 / 255))
    np.testing.assert_array_equal(out[0, 2], expected)


def test_16_bit_is_scaled_to_8_bit(tmp_path):
    img16 = np.zeros((2, 3, 3), np.uint16)
    img16[0, 0] = 65535
    img16[0, 1] = 257 * 100  # exactly 100 in 8 bits
    img16[0, 2] = 128  # rounds to 0
    out = read_image(write(tmp_path / "deep.png", img16))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out[0, 0], 255)
    np.testing.assert_array_equal(out[0, 1], 100)
    np.testing.assert_array_equal(out[0, 2], 0)


def test_16_bit_grayscale(tmp_path):
    out = read_image(write(tmp_path / "g16.png", np.full((5, 5), 65535, np.uint16)))
    assert out.shape == (5, 5, 3) and (out == 255).all()


def test_float_images_are_taken_as_0_to_1():
    out = to_bgr_uint8(np.array([[0.0, 0.5, 1.0, 2.0]], np.float32))
    np.testing.assert_array_equal(out[0, :, 0], [0, 128, 255, 255])


def test_unsupported_layout_and_dtype():
    with pytest.raises(ImageReadError, match="layout"):
        to_bgr_uint8(np.zeros((4, 4, 2), np.uint8), "x")
    with pytest.raises(ImageReadError, match="pixel type int32"):
        to_bgr_uint8(np.zeros((4, 4, 3), np.int32), "x")


def test_huge_image_is_refused_or_downscaled(tmp_path):
    path = write(tmp_path / "big.png", np.full((100, 200, 3), 77, np.uint8))
    with pytest.raises(ImageReadError, match=r"big.png: 200x100 is 0.0 megapixels, above the limit"):
        read_image(path, max_pixels=5000)
    small = read_image(path, max_pixels=5000, downscale_huge=True)
    assert small.shape[0] * small.shape[1] <= 5000 and small.shape[1] == 2 * small.shape[0]
    assert (small == 77).all()
    assert read_image(path, max_pixels=None).shape == (100, 200, 3)


def test_errors_share_a_base_class():
    assert issubclass(ImageReadError, FaceopsError) and issubclass(VideoOpenError, FaceopsError)


def test_list_and_iter_images(tmp_path):
    write(tmp_path / "b.jpg", np.zeros((8, 8, 3), np.uint8))
    write(tmp_path / "a.png", np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "readme.txt").write_text("not an image, ignored in folders")
    (tmp_path / "broken.jpg").write_text("broken")
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "c.png", np.zeros((8, 8, 3), np.uint8))
    names = [p.name for p in list_images(tmp_path)]
    assert names == ["a.png", "b.jpg", "broken.jpg"]
    assert [p.name for p in list_images(tmp_path, recursive=True)] == ["a.png", "b.jpg", "broken.jpg", "c.png"]
    # An explicitly named file is kept whatever its extension, so reading it reports the problem.
    assert list_images([tmp_path / "readme.txt"]) == [tmp_path / "readme.txt"]
    with pytest.raises(ImageReadError, match="broken.jpg"):
        list(iter_images(tmp_path))
    got = [p.name for p, img in iter_images(tmp_path, skip_unreadable=True)]
    assert got == ["a.png", "b.jpg"]


def make_video(path, frames=4, size=(64, 48)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, size)
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), 40 * i, np.uint8))
    writer.release()
    return path


def test_video_frames(tmp_path):
    path = make_video(tmp_path / "clip.mp4")
    frames = list(iter_video_frames(path))
    assert [i for i, _ in frames] == [0, 1, 2, 3]
    assert all(f.shape == (48, 64, 3) and f.dtype == np.uint8 for _, f in frames)
    with VideoReader(path) as video:
        assert video.size == (64, 48) and video.fps == pytest.approx(10)


def test_video_errors_name_the_file(tmp_path):
    with pytest.raises(VideoOpenError, match="missing.mp4: no such file"):
        iter_video_frames(tmp_path / "missing.mp4")  # raises at the call, not at the first next()
    (tmp_path / "junk.mp4").write_bytes(b"\x00" * 1000)
    with pytest.raises(VideoOpenError, match="junk.mp4"):
        iter_video_frames(tmp_path / "junk.mp4")


def test_jpeg_exif_orientation_is_applied(tmp_path):
    from PIL import Image  # Pillow comes with matplotlib, a test dependency

    img = np.zeros((20, 40, 3), np.uint8)
    img[:, :20] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
    Image.fromarray(img).save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    out = read_image(tmp_path / "phone.jpg")
    assert out.shape == (40, 20, 3)  # upright: the 40 px side is now the height
    assert out[:15].mean() > 200 and out[25:].mean() < 50  # the white half went to the top
