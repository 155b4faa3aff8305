//! Rigid superposition of C-alpha traces (Kabsch, through nalgebra's SVD) and RMSD.

use nalgebra::{Matrix3, Vector3};

/// A rotation and translation mapping one trace onto another: `y = R·x + t`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Superposition {
    /// Rotation, row-major.
    pub rotation: [[f32; 3]; 3],
    /// Translation (Å).
    pub translation: [f32; 3],
    /// RMSD after superposition (Å).
    pub rmsd: f32,
}

impl Superposition {
    /// Apply to a point.
    pub fn apply(&self, p: [f32; 3]) -> [f32; 3] {
        let r = &self.rotation;
        let mut out = self.translation;
        for (i, o) in out.iter_mut().enumerate() {
            *o += r[i][0] * p[0] + r[i][1] * p[1] + r[i][2] * p[2];
        }
        out
    }
}

fn centroid(x: &[[f32; 3]]) -> Vector3<f64> {
    let mut c = Vector3::zeros();
    for p in x {
        c += Vector3::new(p[0] as f64, p[1] as f64, p[2] as f64);
    }
    c / x.len().max(1) as f64
}

/// RMSD without superposition; `None` when the lengths differ or are zero.
pub fn rmsd(a: &[[f32; 3]], b: &[[f32; 3]]) -> Option<f32> {
    if a.len() != b.len() || a.is_empty() {
        return None;
    }
    let sum: f64 = a
        .iter()
        .zip(b)
        .map(|(p, q)| {
            (0..3)
                .map(|k| (p[k] as f64 - q[k] as f64).powi(2))
                .sum::<f64>()
        })
        .sum();
    Some((sum / a.len() as f64).sqrt() as f32)
}

/// The proper rotation and translation that best map `mobile` onto `target` (least squares),
/// with the RMSD after it; `None` when the lengths differ or are zero.
pub fn superpose(mobile: &[[f32; 3]], target: &[[f32; 3]]) -> Option<Superposition> {
    if mobile.len() != target.len() || mobile.is_empty() {
        return None;
    }
    let (cm, ct) = (centroid(mobile), centroid(target));
    let mut h = Matrix3::<f64>::zeros();
    for (p, q) in mobile.iter().zip(target) {
        let p = Vector3::new(p[0] as f64, p[1] as f64, p[2] as f64) - cm;
        let q = Vector3::new(q[0] as f64, q[1] as f64, q[2] as f64) - ct;
        h += p * q.transpose();
    }
    let svd = h.svd(true, true);
    let (u, v_t) = (svd.u?, svd.v_t?);
    let d = (v_t.transpose() * u.transpose()).determinant().signum();
    let fix = Matrix3::from_diagonal(&Vector3::new(1.0, 1.0, if d < 0.0 { -1.0 } else { 1.0 }));
    let r = v_t.transpose() * fix * u.transpose();
    let t = ct - r * cm;
    let mut rotation = [[0.0f32; 3]; 3];
    for (i, row) in rotation.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = r[(i, j)] as f32;
        }
    }
    let mut s = Superposition {
        rotation,
        translation: [t.x as f32, t.y as f32, t.z as f32],
        rmsd: 0.0,
    };
    let moved: Vec<[f32; 3]> = mobile.iter().map(|p| s.apply(*p)).collect();
    s.rmsd = rmsd(&moved, target)?;
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace() -> Vec<[f32; 3]> {
        (0..20)
            .map(|i| {
                let t = i as f32 * 0.6;
                [2.3 * t.cos(), 2.3 * t.sin(), 1.5 * i as f32]
            })
            .collect()
    }

    #[test]
    fn recovers_a_rigid_motion() {
        let a = trace();
        let (c, s) = (0.3f32.cos(), 0.3f32.sin());
        let b: Vec<[f32; 3]> = a
            .iter()
            .map(|p| {
                [
                    c * p[0] - s * p[1] + 4.0,
                    s * p[0] + c * p[1] - 2.0,
                    p[2] + 7.0,
                ]
            })
            .collect();
        let sup = superpose(&a, &b).expect("superpose");
        assert!(sup.rmsd < 1e-4, "rmsd {}", sup.rmsd);
        assert!(rmsd(&a, &b).expect("rmsd") > 1.0);
    }

    #[test]
    fn never_reflects() {
        let a = trace();
        let mirrored: Vec<[f32; 3]> = a.iter().map(|p| [-p[0], p[1], p[2]]).collect();
        let sup = superpose(&a, &mirrored).expect("superpose");
        let r = sup.rotation;
        let det = r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1])
            - r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0])
            + r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0]);
        assert!((det - 1.0).abs() < 1e-4);
        assert!(
            sup.rmsd > 0.5,
            "a helix and its mirror image do not superpose"
        );
    }

    #[test]
    fn mismatched_lengths() {
        assert!(superpose(&trace(), &trace()[..5]).is_none());
        assert!(superpose(&[], &[]).is_none());
    }
}
