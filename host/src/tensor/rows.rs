//! Row operations along the first dimension (the batch): what cascades,
//! ensembles and a batcher need to pick rows, put them back and merge or
//! split batches. Splits share the original bytes.

use super::{Tensor, TensorError};
use bytes::BytesMut;

impl Tensor {
    /// Bytes of one row.
    fn row_bytes(&self) -> usize {
        self.len().checked_div(self.rows()).unwrap_or(0)
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
        let width = self.row_bytes();
        let mut data = BytesMut::with_capacity(width * picked.len());
        for &row in picked {
            let bytes = self
                .data
                .get(row * width..(row + 1) * width)
                .ok_or_else(|| {
                    TensorError::Rows(format!("row {row} of a tensor of {} rows", self.rows()))
                })?;
            data.extend_from_slice(bytes);
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
        let width = self.row_bytes();
        let mut start = 0;
        counts
            .iter()
            .map(|&count| {
                let part = self.data.slice(start * width..(start + count) * width);
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
    let width = first.row_bytes();
    let mut data = vec![0u8; width * total];
    let mut filled = 0;
    for (picked, part) in parts {
        same_rows(first, part)?;
        if part.rows() != picked.len() {
            return Err(TensorError::Rows(format!(
                "a part of {} rows for {} places",
                part.rows(),
                picked.len()
            )));
        }
        for (i, &row) in picked.iter().enumerate() {
            let target = data
                .get_mut(row * width..(row + 1) * width)
                .ok_or_else(|| TensorError::Rows(format!("row {row} of {total}")))?;
            target.copy_from_slice(&part.data[i * width..(i + 1) * width]);
        }
        filled += picked.len();
    }
    if filled != total {
        return Err(TensorError::Rows(format!(
            "parts fill {filled} of {total} rows"
        )));
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
