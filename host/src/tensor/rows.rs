//! Row operations along the first dimension (the batch): what cascades,
//! ensembles and a batcher need to pick rows, put them back and merge or
//! split batches. Splits share the original bytes.

use super::{Dtype, Tensor, TensorError, strings};
use bytes::BytesMut;

impl Tensor {
    /// Where each row starts in the bytes, plus the end: `rows + 1`
    /// offsets. Fixed-size rows are computed; BYTES rows are found by
    /// walking the length prefixes (every BYTES tensor's were checked when
    /// it was made).
    fn row_bounds(&self) -> Result<Vec<usize>, TensorError> {
        let rows = self.rows();
        if self.dtype != Dtype::Bytes {
            let width = self.len().checked_div(rows).unwrap_or(0);
            return Ok((0..=rows).map(|r| r * width).collect());
        }
        let per_row: usize = self
            .dims
            .get(1..)
            .unwrap_or_default()
            .iter()
            .map(|&d| d as usize)
            .product();
        if per_row == 0 {
            return Ok(vec![0; rows + 1]);
        }
        let starts = strings::offsets(&self.data, rows * per_row)?;
        Ok(starts.into_iter().step_by(per_row).collect())
    }

    /// The same tensor with another leading dimension.
    fn with_rows(&self, rows: usize) -> Result<Vec<u32>, TensorError> {
        let mut dims = self.dims.clone();
        match dims.first_mut() {
            Some(first) => {
                *first = u32::try_from(rows)
                    .map_err(|_| TensorError::Rows(format!("{rows} rows do not fit in u32")))?;
                Ok(dims)
            }
            None => Err(TensorError::Rows("a scalar has no rows".into())),
        }
    }

    /// The given rows, in that order (shared, not copied, when they are all
    /// the rows in order).
    pub fn gather(&self, picked: &[usize]) -> Result<Tensor, TensorError> {
        if picked.len() == self.rows() && picked.iter().enumerate().all(|(i, &r)| i == r) {
            return Ok(self.clone());
        }
        let bounds = self.row_bounds()?;
        let row = |r: usize| {
            bounds
                .get(r..r + 2)
                .map(|b| &self.data[b[0]..b[1]])
                .ok_or_else(|| {
                    TensorError::Rows(format!("row {r} of a tensor of {} rows", self.rows()))
                })
        };
        let mut size = 0usize;
        for &r in picked {
            size += row(r)?.len();
        }
        let mut data = BytesMut::with_capacity(size);
        for &r in picked {
            data.extend_from_slice(row(r)?);
        }
        Tensor::new(self.dtype, self.with_rows(picked.len())?, data.freeze())
    }

    /// Consecutive parts of `counts` rows each, sharing this tensor's bytes.
    pub fn split(&self, counts: &[usize]) -> Result<Vec<Tensor>, TensorError> {
        let total: usize = counts.iter().sum();
        if total != self.rows() {
            return Err(TensorError::Rows(format!(
                "parts of {total} rows from a tensor of {}",
                self.rows()
            )));
        }
        let bounds = self.row_bounds()?;
        let mut start = 0;
        counts
            .iter()
            .map(|&count| {
                let part = self.data.slice(bounds[start]..bounds[start + count]);
                start += count;
                Tensor::new(self.dtype, self.with_rows(count)?, part)
            })
            .collect()
    }
}

/// Checks `part` has the first part's element type and row shape.
fn same_rows(first: &Tensor, part: &Tensor) -> Result<(), TensorError> {
    if part.dtype != first.dtype || part.dims.get(1..) != first.dims.get(1..) {
        return Err(TensorError::Rows(format!(
            "parts disagree: {} {:?} vs {} {:?}",
            first.dtype, first.dims, part.dtype, part.dims
        )));
    }
    Ok(())
}

/// One tensor of all the parts' rows, in order.
pub fn concat(parts: &[Tensor]) -> Result<Tensor, TensorError> {
    let Some(first) = parts.first() else {
        return Err(TensorError::Rows("nothing to concatenate".into()));
    };
    if parts.len() == 1 {
        return Ok(first.clone());
    }
    let mut data = BytesMut::with_capacity(parts.iter().map(Tensor::len).sum());
    let mut rows = 0;
    for part in parts {
        same_rows(first, part)?;
        data.extend_from_slice(&part.data);
        rows += part.rows();
    }
    Tensor::new(first.dtype, first.with_rows(rows)?, data.freeze())
}

/// One tensor of `total` rows from parts that each hold the rows listed
/// beside them (the inverse of [`Tensor::gather`] over a partition).
pub fn scatter(parts: &[(&[usize], &Tensor)], total: usize) -> Result<Tensor, TensorError> {
    let Some((_, first)) = parts.first() else {
        return Err(TensorError::Rows("nothing to scatter".into()));
    };
    // Where each output row comes from: (part, row in that part).
    let mut source: Vec<Option<(usize, usize)>> = vec![None; total];
    let mut bounds = Vec::with_capacity(parts.len());
    for (p, (picked, part)) in parts.iter().enumerate() {
        same_rows(first, part)?;
        if part.rows() != picked.len() {
            return Err(TensorError::Rows(format!(
                "a part of {} rows for {} places",
                part.rows(),
                picked.len()
            )));
        }
        for (i, &row) in picked.iter().enumerate() {
            let slot = source
                .get_mut(row)
                .ok_or_else(|| TensorError::Rows(format!("row {row} of {total}")))?;
            *slot = Some((p, i));
        }
        bounds.push(part.row_bounds()?);
    }
    let filled = source.iter().filter(|s| s.is_some()).count();
    let placed: usize = parts.iter().map(|(picked, _)| picked.len()).sum();
    if filled != total || placed != total {
        return Err(TensorError::Rows(format!(
            "parts fill {placed} of {total} rows"
        )));
    }
    let mut data = Vec::with_capacity(parts.iter().map(|(_, t)| t.len()).sum());
    for (p, i) in source.into_iter().flatten() {
        let b = &bounds[p];
        data.extend_from_slice(&parts[p].1.data[b[i]..b[i + 1]]);
    }
    Tensor::new(first.dtype, first.with_rows(total)?, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(values: &[f32]) -> Tensor {
        Tensor::from_f32(vec![values.len() as u32 / 2, 2], values).unwrap()
    }

    #[test]
    fn gather_picks_rows_and_shares_when_it_takes_them_all() {
        let t = rows(&[0., 1., 2., 3., 4., 5.]);
        assert_eq!(t.gather(&[2, 0]).unwrap(), rows(&[4., 5., 0., 1.]));
        assert_eq!(
            t.gather(&[0, 1, 2]).unwrap().data().as_ptr(),
            t.data().as_ptr()
        );
        assert!(t.gather(&[3]).is_err());
    }

    #[test]
    fn split_then_concat_is_the_identity_and_shares_bytes() {
        let t = rows(&[0., 1., 2., 3., 4., 5.]);
        let parts = t.split(&[1, 0, 2]).unwrap();
        assert_eq!(parts[0], rows(&[0., 1.]));
        assert_eq!(parts[1].dims(), [0, 2]);
        assert_eq!(parts[2].data().as_ptr(), t.data()[8..].as_ptr());
        assert_eq!(concat(&parts).unwrap(), t);
        assert!(t.split(&[1, 1]).is_err());
    }

    #[test]
    fn concat_refuses_parts_of_another_shape() {
        let other = Tensor::from_f32(vec![1, 3], &[0., 1., 2.]).unwrap();
        let err = concat(&[rows(&[0., 1.]), other]).unwrap_err();
        assert!(err.to_string().contains("parts disagree"), "{err}");
    }

    #[test]
    fn bytes_rows_gather_split_concat_and_scatter_by_their_own_lengths() {
        let t = Tensor::from_strings(vec![3, 2], &["a", "bb", "", "ccc", "dddd", "é"]).unwrap();
        let picked = t.gather(&[2, 0]).unwrap();
        assert_eq!(
            picked.strings(),
            [&b"dddd"[..], "é".as_bytes(), b"a", b"bb"]
        );
        let parts = t.split(&[1, 2]).unwrap();
        assert_eq!(
            parts[1].strings(),
            [&b""[..], b"ccc", b"dddd", "é".as_bytes()]
        );
        assert_eq!(concat(&parts).unwrap(), t);
        let (a, b) = (t.gather(&[1]).unwrap(), t.gather(&[0, 2]).unwrap());
        assert_eq!(scatter(&[(&[1], &a), (&[0, 2], &b)], 3).unwrap(), t);
        let empty = Tensor::from_strings(vec![2, 0], &[] as &[&str]).unwrap();
        assert_eq!(empty.gather(&[1]).unwrap().dims(), [1, 0]);
    }

    #[test]
    fn scatter_inverts_gather_and_needs_every_row() {
        let t = rows(&[0., 1., 2., 3., 4., 5.]);
        let (a, b) = (t.gather(&[1]).unwrap(), t.gather(&[0, 2]).unwrap());
        let back = scatter(&[(&[1], &a), (&[0, 2], &b)], 3).unwrap();
        assert_eq!(back, t);
        let short = scatter(&[(&[1], &a)], 3).unwrap_err();
        assert_eq!(short.to_string(), "parts fill 1 of 3 rows");
        let wrong = scatter(&[(&[0, 1], &a)], 3).unwrap_err();
        assert_eq!(wrong.to_string(), "a part of 1 rows for 2 places");
    }
}
