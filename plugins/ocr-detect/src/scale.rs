//! The detector's input made in one pass over the image: scaled, turned to
//! BGR planes and normalised together, with no scaled copy in between.

use image::RgbImage;

/// Interpolation weights are fixed-point with this many fraction bits, as
/// OpenCV's (`INTER_RESIZE_COEF_BITS`): integer arithmetic, which
/// WebAssembly runs far faster than rounding floats (`f32::round` is a
/// library call there).
const BITS: u32 = 11;
const ONE: u32 = 1 << BITS;

/// Where one output coordinate samples the source: the two neighbours and
/// the weight of the second, out of `ONE`.
#[derive(Clone, Copy)]
struct Tap {
    first: usize,
    second: usize,
    weight: u32,
}

/// OpenCV's `INTER_LINEAR` mapping (which RapidOCR's `cv2.resize` uses):
/// the centre of output pixel `i` falls at `(i + 0.5) · from / to − 0.5` in
/// the source, clamped to its edges.
fn taps(from: u32, to: u32) -> Vec<Tap> {
    let scale = from as f32 / to as f32;
    let last = from.saturating_sub(1) as usize;
    (0..to)
        .map(|i| {
            let at = ((i as f32 + 0.5) * scale - 0.5).max(0.0);
            let first = (at.floor() as usize).min(last);
            Tap {
                first,
                second: (first + 1).min(last),
                weight: if first == last {
                    0
                } else {
                    ((at - first as f32) * ONE as f32 + 0.5) as u32
                },
            }
        })
        .collect()
}

/// `image` scaled to `width`×`height` by bilinear interpolation, each
/// sample rounded to a byte as a scaled image would hold it, then laid out
/// as PaddleOCR's detector takes it: three planes B, G, R of
/// `(x / 255 − 0.5) / 0.5`.
pub fn detector_input(image: &RgbImage, width: u32, height: u32) -> Vec<f32> {
    let normalised: [f32; 256] = std::array::from_fn(|v| (v as f32 / 255.0 - 0.5) / 0.5);
    let columns = taps(image.width(), width);
    let rows = taps(image.height(), height);
    let source = image.as_raw();
    let stride = image.width() as usize * 3;
    let plane = width as usize * height as usize;
    let mut data = vec![0f32; plane * 3];
    let (blue, rest) = data.split_at_mut(plane);
    let (green, red) = rest.split_at_mut(plane);
    for (y, row) in rows.iter().enumerate() {
        let top = &source[row.first * stride..(row.first + 1) * stride];
        let bottom = &source[row.second * stride..(row.second + 1) * stride];
        let out = y * width as usize;
        for (x, column) in columns.iter().enumerate() {
            let (a, b) = (column.first * 3, column.second * 3);
            let (left, right) = (ONE - column.weight, column.weight);
            let (above, below) = (ONE - row.weight, row.weight);
            let mut bgr = [0f32; 3];
            for (c, value) in bgr.iter_mut().enumerate() {
                let upper = u32::from(top[a + c]) * left + u32::from(top[b + c]) * right;
                let lower = u32::from(bottom[a + c]) * left + u32::from(bottom[b + c]) * right;
                // At most 255 · 2¹¹ · 2¹¹ < 2³¹: no overflow.
                let byte = (upper * above + lower * below + (1 << (2 * BITS - 1))) >> (2 * BITS);
                *value = normalised[byte.min(255) as usize];
            }
            red[out + x] = bgr[0];
            green[out + x] = bgr[1];
            blue[out + x] = bgr[2];
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(byte: u8) -> f32 {
        (f32::from(byte) / 255.0 - 0.5) / 0.5
    }

    #[test]
    fn the_same_size_keeps_every_pixel_as_bgr_planes() {
        let image = RgbImage::from_fn(5, 3, |x, y| image::Rgb([x as u8 * 40, y as u8 * 90, 7]));
        let data = detector_input(&image, 5, 3);
        let plane = 15;
        for y in 0..3u32 {
            for x in 0..5u32 {
                let i = (y * 5 + x) as usize;
                let [r, g, b] = image.get_pixel(x, y).0;
                assert_eq!(
                    [data[i], data[plane + i], data[2 * plane + i]],
                    [value(b), value(g), value(r)]
                );
            }
        }
    }

    #[test]
    fn twice_the_size_interpolates_between_neighbours() {
        // Columns 0 and 100: OpenCV's linear resize to 4 gives 0, 25, 75, 100.
        let image = RgbImage::from_fn(2, 1, |x, _| image::Rgb([x as u8 * 100, 0, 0]));
        let data = detector_input(&image, 4, 2);
        let red = &data[2 * 8..];
        let expected = [0u8, 25, 75, 100].map(value);
        assert_eq!(&red[..4], &expected);
        assert_eq!(&red[4..], &expected, "both rows sample the one source row");
    }

    #[test]
    fn shrinking_samples_between_source_pixels() {
        // 4 → 2: centres at 0.5 and 2.5, halfway between neighbours.
        let image = RgbImage::from_fn(4, 1, |x, _| image::Rgb([0, x as u8 * 10, 0]));
        let data = detector_input(&image, 2, 1);
        assert_eq!(&data[2..4], &[value(5), value(25)]);
    }
}
