//! Synthetic-file tests: PNG variants, BMP, EXIF orientation, lenient JPEG.

use diffclip_data::preprocess::{DecodeOptions, Pipeline, Preset, decode_bytes};

use super::image_path;

#[test]
fn jpeg_with_extraneous_bytes_decodes_like_libjpeg() {
    // libjpeg only warns about garbage before a marker; Pillow decodes such files.
    let bytes = std::fs::read(image_path("coco_sample.jpg")).unwrap();
    let app0_len = usize::from(u16::from_be_bytes([bytes[4], bytes[5]]));
    let at = 4 + app0_len; // just after SOI + APP0
    let mut patched = bytes[..at].to_vec();
    patched.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
    patched.extend_from_slice(&bytes[at..]);
    let opts = DecodeOptions::default();
    let a = decode_bytes(&bytes, "coco_sample.jpg", &opts).unwrap();
    let b = decode_bytes(&patched, "patched.jpg", &opts).unwrap();
    assert_eq!(a, b);
}

fn encode_png(
    w: u32,
    h: u32,
    ct: png::ColorType,
    depth: png::BitDepth,
    data: &[u8],
    extra: impl FnOnce(&mut png::Encoder<&mut Vec<u8>>),
) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(ct);
        enc.set_depth(depth);
        extra(&mut enc);
        let mut writer = enc.write_header().unwrap();
        writer.write_image_data(data).unwrap();
    }
    out
}

#[test]
fn png_modes_follow_pillow() {
    use diffclip_data::preprocess::Pixels;
    use png::{BitDepth, ColorType};
    let opts = DecodeOptions::default();
    // 16-bit RGB: Pillow keeps the most significant byte.
    let rgb16: Vec<u8> = [0x12u8, 0xFF, 0x80, 0x01, 0x00, 0xFF].to_vec();
    let bytes = encode_png(1, 1, ColorType::Rgb, BitDepth::Sixteen, &rgb16, |_| {});
    let img = decode_bytes(&bytes, "rgb16.png", &opts).unwrap();
    assert_eq!(img.pixels(), &Pixels::Rgb(vec![0x12, 0x80, 0x00]));
    // 4-bit grey scaled by 17.
    let bytes = encode_png(2, 1, ColorType::Grayscale, BitDepth::Four, &[0x0F], |_| {});
    let img = decode_bytes(&bytes, "g4.png", &opts).unwrap();
    assert_eq!(img.pixels(), &Pixels::L(vec![0, 255]));
    // Palette with tRNS: mode P, transparency ignored by the RGB conversion.
    let bytes = encode_png(
        3,
        1,
        ColorType::Indexed,
        BitDepth::Two,
        &[0b0001_1000],
        |e| {
            e.set_palette(vec![10, 20, 30, 40, 50, 60, 70, 80, 90]);
            e.set_trns(vec![0, 255, 255]);
        },
    );
    let img = decode_bytes(&bytes, "pal.png", &opts).unwrap();
    assert_eq!(img.mode_name(), "P");
    assert_eq!(img.to_rgb_bytes(), vec![10, 20, 30, 40, 50, 60, 70, 80, 90]);
    // 16-bit grey: I;16, clipped on conversion.
    let bytes = encode_png(
        2,
        1,
        ColorType::Grayscale,
        BitDepth::Sixteen,
        &[0, 200, 1, 0],
        |_| {},
    );
    let img = decode_bytes(&bytes, "g16.png", &opts).unwrap();
    assert_eq!(img.pixels(), &Pixels::I16(vec![200, 256]));
    assert_eq!(img.to_rgb_bytes(), vec![200, 200, 200, 255, 255, 255]);
}

#[test]
fn bmp_decodes() {
    let rgb: Vec<u8> = (0..4 * 3 * 3).map(|i| (i * 7) as u8).collect();
    let mut bytes = Vec::new();
    image::codecs::bmp::BmpEncoder::new(&mut bytes)
        .encode(&rgb, 4, 3, image::ExtendedColorType::Rgb8)
        .unwrap();
    let img = decode_bytes(&bytes, "x.bmp", &DecodeOptions::default()).unwrap();
    assert_eq!((img.width(), img.height(), img.mode_name()), (4, 3, "RGB"));
    assert_eq!(img.to_rgb_bytes(), rgb);
    let x = Pipeline::from_preset(Preset::Slip, 32)
        .unwrap()
        .process_bytes(&bytes, "x.bmp", 0)
        .unwrap();
    assert_eq!(x.len(), 3 * 32 * 32);
}

#[test]
fn exif_orientation_is_optional() {
    use diffclip_data::preprocess::apply_orientation;
    let bytes = std::fs::read(image_path("china.jpg")).unwrap();
    // APP1 Exif with a single IFD0 entry: Orientation (0x0112) = 6 (rotate 90 clockwise).
    let mut tiff = b"Exif\0\0II*\0\x08\0\0\0\x01\0".to_vec();
    tiff.extend_from_slice(&[0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0]);
    let mut patched = bytes[..2].to_vec();
    patched.extend_from_slice(&[0xFF, 0xE1]);
    patched.extend_from_slice(&((tiff.len() + 2) as u16).to_be_bytes());
    patched.extend_from_slice(&tiff);
    patched.extend_from_slice(&bytes[2..]);
    let plain = decode_bytes(&patched, "exif.jpg", &DecodeOptions::default()).unwrap();
    assert_eq!((plain.width(), plain.height()), (640, 427));
    let opts = DecodeOptions {
        exif_orientation: true,
        ..Default::default()
    };
    let turned = decode_bytes(&patched, "exif.jpg", &opts).unwrap();
    assert_eq!((turned.width(), turned.height()), (427, 640));
    assert_eq!(turned, apply_orientation(&plain, 6));
}
