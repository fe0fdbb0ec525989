//! Per-format decoders into [`DecodedImage`] in the mode Pillow would open.
//!
//! PNG and GIF go through the `png` / `gif` crates directly (to keep palettes,
//! 16-bit grey and `tRNS` as Pillow does), JPEG through `zune-jpeg` directly (to
//! get raw CMYK), WebP and BMP through the `image` crate.

use std::io::Cursor;

use super::pixels::{DecodedImage, Pixels};

/// Why a codec failed; `decode.rs` adds the file name.
#[derive(Debug)]
pub(crate) enum Fail {
    Decode(String),
    Unsupported(String),
    TooLarge(u32, u32),
}

/// A decoded image and its raw EXIF chunk, if any.
pub(crate) type Decoded = (DecodedImage, Option<Vec<u8>>);

fn check(w: u32, h: u32, max_pixels: u64) -> Result<(), Fail> {
    if w == 0 || h == 0 {
        return Err(Fail::Decode(format!("image has zero size {w}x{h}")));
    }
    if u64::from(w) * u64::from(h) > max_pixels {
        return Err(Fail::TooLarge(w, h));
    }
    Ok(())
}

fn build(w: u32, h: u32, p: Pixels) -> Result<DecodedImage, Fail> {
    DecodedImage::new(w, h, p).map_err(|e| Fail::Decode(e.to_string()))
}

/// PNG: grey 1-bit -> 2-colour palette (Pillow mode `1` also resizes with nearest),
/// grey 2/4/8-bit -> `L` (scaled to 8 bits), grey 16-bit -> `I;16`, 16-bit colour
/// -> most significant byte (Pillow's `;16B` raw modes), palette -> `P`; `tRNS`
/// is ignored (Pillow keeps it as `info["transparency"]`, which `convert` ignores).
pub(crate) fn png(bytes: &[u8], max_pixels: u64) -> Result<Decoded, Fail> {
    use png::{BitDepth, ColorType};
    let df = |e: png::DecodingError| Fail::Decode(e.to_string());
    let limits = png::Limits {
        bytes: usize::try_from(max_pixels.saturating_mul(8)).unwrap_or(usize::MAX),
    };
    let mut dec = png::Decoder::new_with_limits(Cursor::new(bytes), limits);
    dec.set_transformations(png::Transformations::IDENTITY);
    let hdr = dec.read_header_info().map_err(df)?;
    check(hdr.width, hdr.height, max_pixels)?;
    let mut reader = dec.read_info().map_err(df)?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| Fail::TooLarge(reader.info().width, reader.info().height))?;
    let mut buf = vec![0u8; size];
    let out = reader.next_frame(&mut buf).map_err(df)?;
    let info = reader.info();
    let (w, h, line) = (out.width, out.height, out.line_size);
    let exif = info.exif_metadata.as_ref().map(|e| e.to_vec());
    let bits = out.bit_depth as u8;
    let n = w as usize * h as usize;
    let hi_bytes = |buf: &[u8]| -> Vec<u8> { buf.chunks_exact(2).map(|b| b[0]).collect() };
    let pixels = match (out.color_type, out.bit_depth) {
        (ColorType::Grayscale, BitDepth::One) => Pixels::Palette {
            indices: unpack(&buf, w, h, line, 1),
            palette: vec![[0, 0, 0], [255, 255, 255]],
        },
        (ColorType::Grayscale, BitDepth::Sixteen) => Pixels::I16(
            buf[..n * 2]
                .chunks_exact(2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                .collect(),
        ),
        (ColorType::Grayscale, _) => {
            let scale = 255 / ((1u16 << bits) - 1) as u8;
            Pixels::L(
                unpack(&buf, w, h, line, bits)
                    .into_iter()
                    .map(|v| v * scale)
                    .collect(),
            )
        }
        (ColorType::Indexed, _) => {
            let pal = info
                .palette
                .as_ref()
                .ok_or_else(|| Fail::Decode("palette PNG without PLTE".into()))?;
            Pixels::Palette {
                indices: unpack(&buf, w, h, line, bits),
                palette: pal.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect(),
            }
        }
        (ColorType::Rgb, BitDepth::Sixteen) => Pixels::Rgb(hi_bytes(&buf[..n * 6])),
        (ColorType::Rgb, _) => Pixels::Rgb(buf[..n * 3].to_vec()),
        (ColorType::GrayscaleAlpha, BitDepth::Sixteen) => Pixels::La(hi_bytes(&buf[..n * 4])),
        (ColorType::GrayscaleAlpha, _) => Pixels::La(buf[..n * 2].to_vec()),
        (ColorType::Rgba, BitDepth::Sixteen) => Pixels::Rgba(hi_bytes(&buf[..n * 8])),
        (ColorType::Rgba, _) => Pixels::Rgba(buf[..n * 4].to_vec()),
    };
    Ok((build(w, h, pixels)?, exif))
}

/// Unpacks `bits`-per-sample rows (MSB first, rows padded to bytes) into one byte per sample.
fn unpack(buf: &[u8], w: u32, h: u32, line: usize, bits: u8) -> Vec<u8> {
    let (w, h) = (w as usize, h as usize);
    if bits == 8 {
        return (0..h)
            .flat_map(|y| buf[y * line..y * line + w].iter().copied())
            .collect();
    }
    let per_byte = 8 / bits as usize;
    let mask = (1u16 << bits) as u8 - 1;
    let mut out = Vec::with_capacity(w * h);
    for y in 0..h {
        let row = &buf[y * line..];
        for x in 0..w {
            let byte = row[x / per_byte];
            let shift = 8 - bits as usize * (x % per_byte + 1);
            out.push((byte >> shift) & mask);
        }
    }
    out
}

/// GIF, first frame: `P` with the local (else global) palette, transparency
/// ignored; a palette that is the identity grey ramp gives `L` as Pillow does.
/// A first frame smaller than the screen is placed on a canvas of the
/// transparent (else background) index.
pub(crate) fn gif(bytes: &[u8], max_pixels: u64) -> Result<Decoded, Fail> {
    let df = |e: gif::DecodingError| Fail::Decode(e.to_string());
    let mut opts = gif::DecodeOptions::new();
    opts.set_color_output(gif::ColorOutput::Indexed);
    if let Some(limit) = std::num::NonZeroU64::new(max_pixels.saturating_mul(2)) {
        opts.set_memory_limit(gif::MemoryLimit::Bytes(limit));
    }
    let mut dec = opts.read_info(Cursor::new(bytes)).map_err(df)?;
    let (sw, sh) = (u32::from(dec.width()), u32::from(dec.height()));
    check(sw, sh, max_pixels)?;
    let global = dec.global_palette().map(<[u8]>::to_vec);
    let bg = dec.bg_color();
    let frame = dec
        .read_next_frame()
        .map_err(df)?
        .ok_or_else(|| Fail::Decode("GIF has no frames".into()))?;
    let palette = frame
        .palette
        .clone()
        .or(global)
        .ok_or_else(|| Fail::Decode("GIF without a palette".into()))?;
    let (fw, fh) = (usize::from(frame.width), usize::from(frame.height));
    let (fl, ft) = (usize::from(frame.left), usize::from(frame.top));
    let (w, h) = (sw as usize, sh as usize);
    let fill = frame.transparent.or(bg.map(|b| b as u8)).unwrap_or(0);
    if frame.buffer.len() < fw * fh {
        return Err(Fail::Decode(
            "GIF frame data is shorter than its size".into(),
        ));
    }
    let mut indices = vec![fill; w * h];
    // A frame placed (partly) outside the screen is clipped to it; one entirely to the right
    // of it leaves nothing to copy.
    let cols = fw.min(w.saturating_sub(fl));
    let rows = if cols == 0 {
        0
    } else {
        fh.min(h.saturating_sub(ft))
    };
    for y in 0..rows {
        let src = &frame.buffer[y * fw..y * fw + cols];
        indices[(ft + y) * w + fl..(ft + y) * w + fl + cols].copy_from_slice(src);
    }
    let palette: Vec<[u8; 3]> = palette
        .chunks_exact(3)
        .map(|c| [c[0], c[1], c[2]])
        .collect();
    let grey_ramp = palette
        .iter()
        .enumerate()
        .all(|(i, c)| c.iter().all(|&v| usize::from(v) == i));
    let pixels = if grey_ramp {
        Pixels::L(indices)
    } else {
        Pixels::Palette { indices, palette }
    };
    Ok((build(sw, sh, pixels)?, None))
}

/// JPEG with `zune-jpeg`: grey -> `L`, CMYK -> raw `CMYK` (inverted back from
/// Adobe's convention when an APP14 Adobe marker is present, as Pillow does),
/// everything else (YCbCr, RGB, YCCK) -> `RGB`.
///
/// Strict decoding first. A file that fails it but is complete (an EOI marker
/// follows the first scan) is decoded leniently, as libjpeg only warns about
/// e.g. extraneous bytes before a marker; a file without that EOI is truncated
/// and stays an error (Pillow: "image file is truncated").
pub(crate) fn jpeg(bytes: &[u8], max_pixels: u64) -> Result<Decoded, Fail> {
    use zune_core::colorspace::ColorSpace;
    let (w, h, out, data, exif) = match zune(bytes, max_pixels, true) {
        Err(Fail::Decode(strict_err)) if complete_after_first_scan(bytes) => {
            zune(bytes, max_pixels, false).map_err(|_| Fail::Decode(strict_err))?
        }
        other => other?,
    };
    let pixels = match out {
        ColorSpace::Luma => Pixels::L(data),
        ColorSpace::CMYK if has_adobe_marker(bytes) => {
            Pixels::Cmyk(data.into_iter().map(|v| 255 - v).collect())
        }
        ColorSpace::CMYK => Pixels::Cmyk(data),
        _ => Pixels::Rgb(data),
    };
    Ok((build(w, h, pixels)?, exif))
}

type ZuneOut = (
    u32,
    u32,
    zune_core::colorspace::ColorSpace,
    Vec<u8>,
    Option<Vec<u8>>,
);

fn zune(bytes: &[u8], max_pixels: u64, strict: bool) -> Result<ZuneOut, Fail> {
    use zune_core::colorspace::ColorSpace;
    use zune_core::options::DecoderOptions;
    let df = |e: zune_jpeg::errors::DecodeErrors| Fail::Decode(e.to_string());
    let opts = DecoderOptions::default()
        .set_strict_mode(strict)
        .set_max_width(usize::MAX)
        .set_max_height(usize::MAX);
    let cursor = zune_core::bytestream::ZCursor::new(bytes);
    let mut dec = zune_jpeg::JpegDecoder::new_with_options(cursor, opts);
    dec.decode_headers().map_err(df)?;
    let (w, h) = dec
        .dimensions()
        .ok_or_else(|| Fail::Decode("no JPEG frame header".into()))?;
    let (w, h) = (w as u32, h as u32);
    check(w, h, max_pixels)?;
    let out = match dec.input_colorspace().unwrap_or(ColorSpace::YCbCr) {
        ColorSpace::Luma => ColorSpace::Luma,
        ColorSpace::CMYK => ColorSpace::CMYK,
        _ => ColorSpace::RGB,
    };
    dec.set_options(dec.options().jpeg_set_out_colorspace(out));
    let data = dec.decode().map_err(df)?;
    Ok((w, h, out, data, dec.exif().cloned()))
}

/// Walks the JPEG marker segments up to the first SOS; calls `f(marker, payload)`
/// for each and returns the offset just after the SOS header (None if malformed).
fn walk_headers(bytes: &[u8], mut f: impl FnMut(u8, &[u8])) -> Option<usize> {
    let mut pos = 2;
    while pos + 4 <= bytes.len() {
        // Like libjpeg, skip garbage (and fill bytes) until the next marker.
        if bytes[pos] != 0xFF || bytes[pos + 1] == 0xFF || bytes[pos + 1] == 0 {
            pos += 1;
            continue;
        }
        let marker = bytes[pos + 1];
        let len = usize::from(u16::from_be_bytes([bytes[pos + 2], bytes[pos + 3]]));
        let end = (pos + 2 + len).min(bytes.len());
        f(marker, &bytes[(pos + 4).min(end)..end]);
        if marker == 0xDA {
            return Some(end);
        }
        if marker == 0xD9 {
            return None;
        }
        pos += 2 + len;
    }
    None
}

/// True when an APP14 "Adobe" segment precedes the first scan.
fn has_adobe_marker(bytes: &[u8]) -> bool {
    let mut found = false;
    walk_headers(bytes, |m, payload| {
        found |= m == 0xEE && payload.starts_with(b"Adobe")
    });
    found
}

/// True when an EOI marker (`FF D9`, which entropy-coded data cannot contain)
/// follows the first scan header.
fn complete_after_first_scan(bytes: &[u8]) -> bool {
    walk_headers(bytes, |_, _| {})
        .is_some_and(|sos| bytes[sos..].windows(2).any(|w| w == [0xFF, 0xD9]))
}

/// Width and height from a bitmap's header (height negative for top-down rows), if it has one.
fn bmp_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    let at = |i: usize, n: usize| bytes.get(i..i + n);
    let header = u32::from_le_bytes(at(14, 4)?.try_into().ok()?);
    if header == 12 {
        let w = u16::from_le_bytes(at(18, 2)?.try_into().ok()?);
        let h = u16::from_le_bytes(at(20, 2)?.try_into().ok()?);
        return Some((w.into(), h.into()));
    }
    let w = i32::from_le_bytes(at(18, 4)?.try_into().ok()?);
    let h = i32::from_le_bytes(at(22, 4)?.try_into().ok()?);
    Some((w.unsigned_abs(), h.unsigned_abs()))
}

/// WebP and BMP through the `image` crate: grey -> `L`/`LA`, colour -> `RGB`/`RGBA`
/// (other sample types are reduced to 8-bit RGB(A) by the `image` crate).
pub(crate) fn via_image_crate(
    bytes: &[u8],
    format: ::image::ImageFormat,
    max_pixels: u64,
) -> Result<Decoded, Fail> {
    use ::image::{DynamicImage, ImageDecoder, ImageError};
    let fail = |e: ImageError| match e {
        ImageError::Unsupported(u) => Fail::Unsupported(u.to_string()),
        other => Fail::Decode(other.to_string()),
    };
    if let Some((w, h)) = (format == ::image::ImageFormat::Bmp).then(|| bmp_dimensions(bytes)).flatten() {
        // The image crate calls a zero-width bitmap "too large".
        check(w, h, u64::MAX)?;
    }
    let mut limits = ::image::Limits::default();
    limits.max_alloc = Some(max_pixels.saturating_mul(8));
    let mut reader = ::image::ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits);
    let mut dec = reader.into_decoder().map_err(fail)?;
    let (w, h) = dec.dimensions();
    check(w, h, max_pixels)?;
    let exif = dec.exif_metadata().ok().flatten();
    let img = DynamicImage::from_decoder(dec).map_err(fail)?;
    let pixels = match img {
        DynamicImage::ImageLuma8(b) => Pixels::L(b.into_raw()),
        DynamicImage::ImageLumaA8(b) => Pixels::La(b.into_raw()),
        DynamicImage::ImageRgb8(b) => Pixels::Rgb(b.into_raw()),
        DynamicImage::ImageRgba8(b) => Pixels::Rgba(b.into_raw()),
        other if other.color().has_alpha() => Pixels::Rgba(other.to_rgba8().into_raw()),
        other => Pixels::Rgb(other.to_rgb8().into_raw()),
    };
    Ok((build(w, h, pixels)?, exif))
}
