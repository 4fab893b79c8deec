//! The DB detector's post-processing on a probability map, and cutting a
//! line out of the image along its rectangle.

use image::{GrayImage, RgbImage};
use imageproc::contours::{BorderType, find_contours};
use imageproc::geometry::min_area_rect;
use imageproc::point::Point;

/// Corners: top-left, top-right, bottom-right, bottom-left, as (x, y).
pub type Quad = [(f32, f32); 4];

/// Text rectangles on a `width`×`height` probability map, in its pixels.
pub fn text_quads(
    map: &[f32],
    width: usize,
    height: usize,
    threshold: f32,
    box_threshold: f32,
    unclip: f32,
    max_candidates: usize,
) -> Vec<Quad> {
    let mask = dilated_mask(map, width, height, threshold);
    let mut quads = Vec::new();
    let outer = find_contours::<i32>(&mask)
        .into_iter()
        .filter(|c| c.border_type == BorderType::Outer && !c.points.is_empty())
        .take(max_candidates);
    for contour in outer {
        let points: Vec<Point<f32>> = contour
            .points
            .iter()
            .map(|p| Point::new(p.x as f32, p.y as f32))
            .collect();
        let quad = ordered(min_area_rect(&points).map(|p| (p.x, p.y)));
        if short_side(&quad) < 3.0 {
            continue;
        }
        if mean_inside(map, width, height, &quad) < box_threshold {
            continue;
        }
        let grown = grow(&quad, unclip);
        if short_side(&grown) < 5.0 {
            continue;
        }
        quads.push(grown);
    }
    quads
}

/// Above `threshold`, dilated by a 2×2 square (as PaddleOCR does, to join
/// the strokes of a line).
fn dilated_mask(map: &[f32], width: usize, height: usize, threshold: f32) -> GrayImage {
    let on: Vec<bool> = map.iter().map(|&p| p > threshold).collect();
    let mut mask = vec![0u8; width * height];
    for y in 0..height {
        let row = &on[y * width..(y + 1) * width];
        let above = if y > 0 {
            &on[(y - 1) * width..y * width]
        } else {
            row
        };
        let out = &mut mask[y * width..(y + 1) * width];
        for x in 0..width {
            let left = x.saturating_sub(1);
            if row[x] || row[left] || above[x] || above[left] {
                out[x] = 255;
            }
        }
    }
    GrayImage::from_raw(width as u32, height as u32, mask)
        .unwrap_or_else(|| GrayImage::new(width as u32, height as u32))
}

/// The corners as top-left, top-right, bottom-right, bottom-left: the two
/// leftmost are the left side, the higher of each pair on top.
fn ordered(mut points: Quad) -> Quad {
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (tl, bl) = if points[1].1 > points[0].1 {
        (points[0], points[1])
    } else {
        (points[1], points[0])
    };
    let (tr, br) = if points[3].1 > points[2].1 {
        (points[2], points[3])
    } else {
        (points[3], points[2])
    };
    [tl, tr, br, bl]
}

fn distance(a: (f32, f32), b: (f32, f32)) -> f32 {
    ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt()
}

/// The shorter side of a rectangle.
pub fn short_side(quad: &Quad) -> f32 {
    distance(quad[0], quad[1]).min(distance(quad[0], quad[3]))
}

/// The mean probability over the pixels inside the rectangle.
fn mean_inside(map: &[f32], width: usize, height: usize, quad: &Quad) -> f32 {
    let xs = quad.iter().map(|p| p.0);
    let ys = quad.iter().map(|p| p.1);
    let clamp = |v: f32, max: usize| (v.max(0.0) as usize).min(max.saturating_sub(1));
    let (x0, x1) = (
        clamp(xs.clone().fold(f32::MAX, f32::min).floor(), width),
        clamp(xs.fold(f32::MIN, f32::max).ceil(), width),
    );
    let (y0, y1) = (
        clamp(ys.clone().fold(f32::MAX, f32::min).floor(), height),
        clamp(ys.fold(f32::MIN, f32::max).ceil(), height),
    );
    let edges = Edges::of(quad);
    let (mut sum, mut count) = (0f64, 0usize);
    for y in y0..=y1 {
        for x in x0..=x1 {
            if edges.inside((x as f32, y as f32)) {
                sum += f64::from(map[y * width + x]);
                count += 1;
            }
        }
    }
    if count == 0 {
        0.0
    } else {
        (sum / count as f64) as f32
    }
}

/// A quadrilateral's four edges, each a start point and its direction of
/// unit length, found once per rectangle rather than once per pixel.
struct Edges([((f32, f32), (f32, f32)); 4]);

impl Edges {
    fn of(quad: &Quad) -> Self {
        Edges(std::array::from_fn(|i| {
            let (a, b) = (quad[i], quad[(i + 1) % 4]);
            let length = distance(a, b).max(1e-6);
            (a, ((b.0 - a.0) / length, (b.1 - a.1) / length))
        }))
    }

    /// Whether `p` is inside (or on) the convex quadrilateral, half a pixel
    /// of slack as a rasteriser fills boundary pixels.
    fn inside(&self, p: (f32, f32)) -> bool {
        let mut sign = 0f32;
        for &(a, along) in &self.0 {
            let cross = along.0 * (p.1 - a.1) - along.1 * (p.0 - a.0);
            if cross.abs() <= 0.5 {
                continue;
            }
            if sign == 0.0 {
                sign = cross.signum();
            } else if cross.signum() != sign {
                return false;
            }
        }
        true
    }
}

/// The rectangle grown by `area × ratio / perimeter` on every side: the
/// minimum-area rectangle around PaddleOCR's unclipped polygon.
fn grow(quad: &Quad, ratio: f32) -> Quad {
    let (a, b) = (distance(quad[0], quad[1]), distance(quad[0], quad[3]));
    if a <= 0.0 || b <= 0.0 {
        return *quad;
    }
    let d = a * b * ratio / (2.0 * (a + b));
    let u = ((quad[1].0 - quad[0].0) / a, (quad[1].1 - quad[0].1) / a);
    let v = ((quad[3].0 - quad[0].0) / b, (quad[3].1 - quad[0].1) / b);
    let shift = |p: (f32, f32), su: f32, sv: f32| {
        (
            p.0 + (u.0 * su + v.0 * sv) * d,
            p.1 + (u.1 * su + v.1 * sv) * d,
        )
    };
    ordered([
        shift(quad[0], -1.0, -1.0),
        shift(quad[1], 1.0, -1.0),
        shift(quad[2], 1.0, 1.0),
        shift(quad[3], -1.0, 1.0),
    ])
}

/// Reading order: top to bottom, and left to right within 10 pixels of
/// height (RapidOCR's order).
pub fn order_lines(quads: &mut [Quad]) {
    quads.sort_by(|a, b| a[0].1.total_cmp(&b[0].1).then(a[0].0.total_cmp(&b[0].0)));
    for i in 0..quads.len().saturating_sub(1) {
        for j in (0..=i).rev() {
            if (quads[j + 1][0].1 - quads[j][0].1).abs() < 10.0 && quads[j + 1][0].0 < quads[j][0].0
            {
                quads.swap(j, j + 1);
            } else {
                break;
            }
        }
    }
}

/// The line inside `quad`, upright, `height` pixels high, as BGR bytes
/// (row-major, 3 per pixel), and its width (at most `max_width`).
pub fn cut_line(image: &RgbImage, quad: &Quad, height: u32, max_width: u32) -> (u32, Vec<u8>) {
    let [mut tl, mut tr, mut br, mut bl] = *quad;
    let mut box_w = distance(tl, tr).max(distance(bl, br));
    let mut box_h = distance(tl, bl).max(distance(tr, br));
    if box_w > 0.0 && box_h / box_w >= 1.5 {
        // A vertical line reads after a quarter turn counter-clockwise.
        (tl, tr, br, bl) = (tr, br, bl, tl);
        std::mem::swap(&mut box_w, &mut box_h);
    }
    let width = ((height as f32 * box_w / box_h.max(1.0)).ceil() as u32).clamp(1, max_width);
    let _ = br;
    // Several samples per output pixel when shrinking, so thin strokes
    // are averaged rather than skipped.
    let steps = |scale: f32| (scale.ceil() as usize).clamp(1, 4);
    let (sx, sy) = (steps(box_w / width as f32), steps(box_h / height as f32));
    let (iw, ih) = (image.width() as f32, image.height() as f32);
    let mut pixels = Vec::with_capacity((width * height * 3) as usize);
    for oy in 0..height {
        for ox in 0..width {
            let mut acc = [0f32; 3];
            for j in 0..sy {
                for i in 0..sx {
                    let u = (ox as f32 + (i as f32 + 0.5) / sx as f32) / width as f32;
                    let v = (oy as f32 + (j as f32 + 0.5) / sy as f32) / height as f32;
                    let x = tl.0 + u * (tr.0 - tl.0) + v * (bl.0 - tl.0) - 0.5;
                    let y = tl.1 + u * (tr.1 - tl.1) + v * (bl.1 - tl.1) - 0.5;
                    let rgb = bilinear(image, x.clamp(0.0, iw - 1.0), y.clamp(0.0, ih - 1.0));
                    for c in 0..3 {
                        acc[c] += rgb[c];
                    }
                }
            }
            let n = (sx * sy) as f32;
            // BGR, as PaddleOCR's models were trained.
            // A saturating cast of the value plus a half rounds it: `f32::round`
            // is a library call in WebAssembly.
            pixels.extend([2, 1, 0].map(|c| (acc[c] / n + 0.5) as u8));
        }
    }
    (width, pixels)
}

fn bilinear(image: &RgbImage, x: f32, y: f32) -> [f32; 3] {
    let (x0, y0) = (x.floor() as u32, y.floor() as u32);
    let (x1, y1) = (
        (x0 + 1).min(image.width() - 1),
        (y0 + 1).min(image.height() - 1),
    );
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let p = |x, y| image.get_pixel(x, y).0.map(f32::from);
    let (a, b, c, d) = (p(x0, y0), p(x1, y0), p(x0, y1), p(x1, y1));
    std::array::from_fn(|k| {
        let top = a[k] + (b[k] - a[k]) * fx;
        let bottom = c[k] + (d[k] - c[k]) * fx;
        top + (bottom - top) * fy
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bright_band_becomes_one_grown_rectangle() {
        let (w, h) = (64, 32);
        let mut map = vec![0f32; w * h];
        for y in 10..20 {
            for x in 8..56 {
                map[y * w + x] = 0.9;
            }
        }
        let quads = text_quads(&map, w, h, 0.3, 0.5, 1.6, 100);
        assert_eq!(quads.len(), 1, "{quads:?}");
        let q = quads[0];
        // 48×10 (dilated to 49×11) grown by 49·11·1.6/(2·60) ≈ 7.2 a side.
        assert!(
            (q[0].0 - 0.8).abs() < 1.5 && (q[0].1 - 2.8).abs() < 1.5,
            "{q:?}"
        );
        assert!(short_side(&q) > 20.0 && short_side(&q) < 30.0, "{q:?}");
        let faint = vec![0.4f32; w * h];
        assert!(text_quads(&faint, w, h, 0.3, 0.5, 1.6, 100).is_empty());
    }

    #[test]
    fn one_pixel_over_the_threshold_dilates_to_two_by_two() {
        let mut map = vec![0f32; 4 * 3];
        map[4 + 1] = 0.9;
        let mask = dilated_mask(&map, 4, 3, 0.3);
        let on: Vec<(u32, u32)> = mask
            .enumerate_pixels()
            .filter(|(_, _, p)| p.0[0] == 255)
            .map(|(x, y, _)| (x, y))
            .collect();
        assert_eq!(on, vec![(1, 1), (2, 1), (1, 2), (2, 2)]);
    }

    #[test]
    fn lines_are_read_top_down_then_left_to_right() {
        let at = |x: f32, y: f32| [(x, y), (x + 5.0, y), (x + 5.0, y + 5.0), (x, y + 5.0)];
        let mut quads = vec![at(50.0, 3.0), at(0.0, 40.0), at(0.0, 0.0)];
        order_lines(&mut quads);
        assert_eq!(quads, vec![at(0.0, 0.0), at(50.0, 3.0), at(0.0, 40.0)]);
    }

    #[test]
    fn a_cut_line_is_upright_and_line_high() {
        let image = RgbImage::from_fn(40, 100, |x, _| image::Rgb([x as u8 * 6, 0, 0]));
        let tall = [(0.0, 0.0), (20.0, 0.0), (20.0, 100.0), (0.0, 100.0)];
        let (width, pixels) = cut_line(&image, &tall, 10, 1000);
        assert_eq!(
            width, 50,
            "turned a quarter: 100 wide, 20 high, scaled to 10"
        );
        assert_eq!(pixels.len(), 50 * 10 * 3);
        // Red (the third byte, BGR) now grows down the rows, not along them.
        assert!(pixels[2] > pixels[(9 * 50) * 3 + 2]);
    }
}
