//! What the 3D view draws, independent of the GPU: the camera (orbit, zoom, pan), the tube
//! mesh through the C-alpha trace, arrows for the score field, highlight spheres, and picking
//! a residue under the pointer. Pure Rust, tested natively.

use bytemuck::{Pod, Zeroable};
use glam::{Mat4, Quat, Vec3, Vec4};

/// One mesh vertex: position, normal, and the colour slot (a residue index, or one of the
/// fixed slots after the residues).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct Vertex {
    /// Position (Å).
    pub position: [f32; 3],
    /// Unit normal.
    pub normal: [f32; 3],
    /// Index into the colour table.
    pub slot: u32,
}

/// A triangle mesh.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mesh {
    /// Vertices.
    pub vertices: Vec<Vertex>,
    /// Triangles, three indices each.
    pub indices: Vec<u32>,
}

impl Mesh {
    fn push(&mut self, position: Vec3, normal: Vec3, slot: u32) -> u32 {
        self.vertices.push(Vertex {
            position: position.to_array(),
            normal: normal.normalize_or_zero().to_array(),
            slot,
        });
        (self.vertices.len() - 1) as u32
    }

    /// Append another mesh.
    pub fn extend(&mut self, other: &Mesh) {
        let base = self.vertices.len() as u32;
        self.vertices.extend_from_slice(&other.vertices);
        self.indices.extend(other.indices.iter().map(|i| i + base));
    }
}

/// Centre (mean) of the points and the radius of the sphere around it that holds them all (at
/// least 5 Å).
pub fn bounds(points: &[[f32; 3]]) -> (Vec3, f32) {
    let n = points.len().max(1) as f32;
    let centre = points.iter().fold(Vec3::ZERO, |a, p| a + Vec3::from(*p)) / n;
    let radius = points
        .iter()
        .map(|p| (Vec3::from(*p) - centre).length())
        .fold(5.0f32, f32::max);
    (centre, radius)
}

/// The orbiting camera: it looks at `target` from `distance` along the rotated view axis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Camera {
    /// Point looked at (Å).
    pub target: Vec3,
    /// Distance from the target (Å).
    pub distance: f32,
    /// Rotation of the scene.
    pub rotation: Quat,
    /// Vertical field of view (radians).
    pub fov_y: f32,
}

impl Camera {
    /// A camera that shows all `points`.
    pub fn fit(points: &[[f32; 3]]) -> Self {
        let (centre, radius) = bounds(points);
        let fov_y = 40f32.to_radians();
        Self {
            target: centre,
            distance: radius / (fov_y / 2.0).sin() * 1.05,
            rotation: Quat::IDENTITY,
            fov_y,
        }
    }

    /// Rotate by a pointer drag of `(dx, dy)` pixels.
    pub fn orbit(&mut self, dx: f32, dy: f32) {
        let k = 0.008;
        self.rotation =
            (Quat::from_rotation_y(dx * k) * Quat::from_rotation_x(dy * k) * self.rotation)
                .normalize();
    }

    /// Move the target by a drag of `(dx, dy)` pixels on a view `height` pixels high.
    pub fn pan(&mut self, dx: f32, dy: f32, height: f32) {
        let s = 2.0 * self.distance * (self.fov_y / 2.0).tan() / height.max(1.0);
        self.target -= self.rotation.inverse() * Vec3::new(dx * s, -dy * s, 0.0);
    }

    /// Zoom in (`factor` < 1) or out.
    pub fn zoom(&mut self, factor: f32) {
        self.distance = (self.distance * factor).clamp(2.0, 5000.0);
    }

    /// World → view.
    pub fn view(&self) -> Mat4 {
        Mat4::from_translation(Vec3::new(0.0, 0.0, -self.distance))
            * Mat4::from_quat(self.rotation)
            * Mat4::from_translation(-self.target)
    }

    /// View → clip (WebGPU depth range 0..1).
    pub fn projection(&self, aspect: f32) -> Mat4 {
        let near = (self.distance * 0.05).max(0.5);
        Mat4::perspective_rh(
            self.fov_y,
            aspect.max(1e-3),
            near,
            self.distance * 4.0 + 200.0,
        )
    }

    /// World → clip.
    pub fn view_projection(&self, aspect: f32) -> Mat4 {
        self.projection(aspect) * self.view()
    }

    /// Screen position (pixels, origin top left) and clip depth of a point, if in front.
    pub fn project(&self, p: [f32; 3], width: f32, height: f32) -> Option<(f32, f32, f32)> {
        let c = self.view_projection(width / height.max(1.0)) * Vec4::from((Vec3::from(p), 1.0));
        if c.w <= 0.0 {
            return None;
        }
        let (x, y, z) = (c.x / c.w, c.y / c.w, c.z / c.w);
        Some(((x + 1.0) * 0.5 * width, (1.0 - y) * 0.5 * height, z))
    }
}

/// The residue whose C-alpha is nearest the pointer at `(x, y)` within `radius` pixels,
/// preferring the one in front when several are close.
pub fn pick(
    points: &[[f32; 3]],
    camera: &Camera,
    width: f32,
    height: f32,
    x: f32,
    y: f32,
    radius: f32,
) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for (i, p) in points.iter().enumerate() {
        if let Some((sx, sy, z)) = camera.project(*p, width, height) {
            let d2 = (sx - x).powi(2) + (sy - y).powi(2);
            if d2 <= radius * radius {
                // Distance on screen first, depth as a tie-breaker within a few pixels.
                let key = d2.sqrt() + z * 4.0;
                if best.is_none_or(|(_, k)| key < k) {
                    best = Some((i, key));
                }
            }
        }
    }
    best.map(|(i, _)| i)
}

fn catmull_rom(p0: Vec3, p1: Vec3, p2: Vec3, p3: Vec3, t: f32) -> Vec3 {
    let t2 = t * t;
    let t3 = t2 * t;
    0.5 * ((2.0 * p1)
        + (-p0 + p2) * t
        + (2.0 * p0 - 5.0 * p1 + 4.0 * p2 - p3) * t2
        + (-p0 + 3.0 * p1 - 3.0 * p2 + p3) * t3)
}

fn any_perpendicular(v: Vec3) -> Vec3 {
    let a = if v.x.abs() < 0.9 { Vec3::X } else { Vec3::Y };
    v.cross(a).normalize_or_zero()
}

/// A smooth tube through the points (Catmull-Rom, `sub` samples per segment, `sides` around),
/// each sample coloured by its nearest residue. Breaks where consecutive C-alphas are more
/// than `max_gap` Å apart (chain breaks).
pub fn tube(points: &[[f32; 3]], radius: f32, sub: usize, sides: usize, max_gap: f32) -> Mesh {
    let mut mesh = Mesh::default();
    let n = points.len();
    if n < 2 {
        return mesh;
    }
    let p = |i: isize| Vec3::from(points[i.clamp(0, n as isize - 1) as usize]);
    // Split into runs without gaps.
    let mut start = 0usize;
    for i in 1..=n {
        let gap = i == n || (p(i as isize) - p(i as isize - 1)).length() > max_gap;
        if gap {
            tube_run(
                &mut mesh,
                points,
                start,
                i,
                radius,
                sub.max(1),
                sides.max(3),
            );
            start = i;
        }
    }
    mesh
}

/// Thinner tubes through other chains, drawn around the chain on screen for context: chain `k`
/// of `chains` in colour slot `first_slot + k` (its residues share one colour).
pub fn context_tubes(chains: &[&[[f32; 3]]], first_slot: u32, radius: f32, max_gap: f32) -> Mesh {
    let mut mesh = Mesh::default();
    for (k, points) in chains.iter().enumerate() {
        let mut t = tube(points, radius, 4, 8, max_gap);
        for v in &mut t.vertices {
            v.slot = first_slot + k as u32;
        }
        mesh.extend(&t);
    }
    mesh
}

fn tube_run(
    mesh: &mut Mesh,
    points: &[[f32; 3]],
    start: usize,
    end: usize,
    radius: f32,
    sub: usize,
    sides: usize,
) {
    let count = end - start;
    if count < 2 {
        return;
    }
    let p =
        |i: isize| Vec3::from(points[(start as isize + i.clamp(0, count as isize - 1)) as usize]);
    let mut centres = Vec::new();
    let mut slots = Vec::new();
    for seg in 0..count - 1 {
        let s = seg as isize;
        for k in 0..sub {
            let t = k as f32 / sub as f32;
            centres.push(catmull_rom(p(s - 1), p(s), p(s + 1), p(s + 2), t));
            slots.push((start + seg + usize::from(t >= 0.5)) as u32);
        }
    }
    centres.push(p(count as isize - 1));
    slots.push((end - 1) as u32);
    // Parallel-transport frames.
    let tangent = |i: usize| {
        let a = centres[i.saturating_sub(1)];
        let b = centres[(i + 1).min(centres.len() - 1)];
        (b - a).normalize_or_zero()
    };
    let mut normal = any_perpendicular(tangent(0));
    let ring_base = mesh.vertices.len() as u32;
    for (i, c) in centres.iter().enumerate() {
        let t = tangent(i);
        normal = (normal - t * normal.dot(t)).normalize_or_zero();
        if normal == Vec3::ZERO {
            normal = any_perpendicular(t);
        }
        let binormal = t.cross(normal);
        for s in 0..sides {
            let a = s as f32 / sides as f32 * std::f32::consts::TAU;
            let dir = normal * a.cos() + binormal * a.sin();
            mesh.push(*c + dir * radius, dir, slots[i]);
        }
    }
    let sides32 = sides as u32;
    for i in 0..(centres.len() - 1) as u32 {
        for s in 0..sides32 {
            let a = ring_base + i * sides32 + s;
            let b = ring_base + i * sides32 + (s + 1) % sides32;
            let c = a + sides32;
            let d = b + sides32;
            mesh.indices.extend_from_slice(&[a, c, b, b, c, d]);
        }
    }
    // Round caps (spheres: no direction needed).
    for (centre, slot) in [
        (centres[0], slots[0]),
        (centres[centres.len() - 1], slots[slots.len() - 1]),
    ] {
        mesh.extend(&sphere(centre.to_array(), radius, slot, 2));
    }
}

/// A UV sphere (`rings` ≥ 2) in one colour slot.
pub fn sphere(centre: [f32; 3], radius: f32, slot: u32, detail: usize) -> Mesh {
    let mut mesh = Mesh::default();
    let rings = 4 * detail.max(1);
    let segments = 2 * rings;
    let c = Vec3::from(centre);
    for r in 0..=rings {
        let phi = r as f32 / rings as f32 * std::f32::consts::PI;
        for s in 0..=segments {
            let theta = s as f32 / segments as f32 * std::f32::consts::TAU;
            let dir = Vec3::new(phi.sin() * theta.cos(), phi.cos(), phi.sin() * theta.sin());
            mesh.push(c + dir * radius, dir, slot);
        }
    }
    let w = segments as u32 + 1;
    for r in 0..rings as u32 {
        for s in 0..segments as u32 {
            let a = r * w + s;
            let b = a + 1;
            let c = a + w;
            let d = c + 1;
            mesh.indices.extend_from_slice(&[a, b, c, b, d, c]);
        }
    }
    mesh
}

/// An arrow from `from` along `vector`: a shaft and a cone head.
pub fn arrow(from: [f32; 3], vector: [f32; 3], radius: f32, slot: u32) -> Mesh {
    let mut mesh = Mesh::default();
    let v = Vec3::from(vector);
    let length = v.length();
    if length < 1e-3 {
        return mesh;
    }
    let dir = v / length;
    let head = (radius * 5.0).min(length * 0.5);
    let a = Vec3::from(from);
    let neck = a + dir * (length - head);
    let tip = a + v;
    let u = any_perpendicular(dir);
    let w = dir.cross(u);
    let sides = 8;
    let ring = |centre: Vec3, r: f32, mesh: &mut Mesh, normal_tilt: f32| -> u32 {
        let base = mesh.vertices.len() as u32;
        for s in 0..sides {
            let ang = s as f32 / sides as f32 * std::f32::consts::TAU;
            let radial = u * ang.cos() + w * ang.sin();
            mesh.push(centre + radial * r, radial + dir * normal_tilt, slot);
        }
        base
    };
    let shaft0 = ring(a, radius, &mut mesh, 0.0);
    let shaft1 = ring(neck, radius, &mut mesh, 0.0);
    let cone0 = ring(neck, radius * 2.5, &mut mesh, 0.5);
    let tip_index = mesh.push(tip, dir, slot);
    let back = mesh.push(neck, -dir, slot);
    let s32 = sides as u32;
    for s in 0..s32 {
        let n = (s + 1) % s32;
        mesh.indices.extend_from_slice(&[
            shaft0 + s,
            shaft1 + s,
            shaft0 + n,
            shaft0 + n,
            shaft1 + s,
            shaft1 + n,
        ]);
        mesh.indices
            .extend_from_slice(&[cone0 + s, tip_index, cone0 + n]);
        mesh.indices
            .extend_from_slice(&[cone0 + n, back, cone0 + s]);
    }
    mesh
}

/// Arrows for a per-residue vector field (`[L·3]`) scaled by `scale` Å per unit; vectors longer
/// than `cap` Å after scaling are shortened to it.
pub fn field_arrows(points: &[[f32; 3]], field: &[f32], scale: f32, cap: f32, slot: u32) -> Mesh {
    let mut mesh = Mesh::default();
    for (p, g) in points.iter().zip(field.chunks_exact(3)) {
        let mut v = Vec3::new(g[0], g[1], g[2]) * scale;
        if v.length() > cap {
            v = v.normalize_or_zero() * cap;
        }
        mesh.extend(&arrow(*p, v.to_array(), 0.12, slot));
    }
    mesh
}

#[cfg(test)]
mod tests {
    use super::*;

    fn helix(n: usize) -> Vec<[f32; 3]> {
        (0..n)
            .map(|i| {
                let t = i as f32 * 100f32.to_radians();
                [2.3 * t.cos(), 2.3 * t.sin(), 1.5 * i as f32]
            })
            .collect()
    }

    #[test]
    fn tube_is_closed_and_indexed() {
        let pts = helix(30);
        let mesh = tube(&pts, 0.4, 4, 8, 4.5);
        assert!(!mesh.indices.is_empty());
        assert_eq!(mesh.indices.len() % 3, 0);
        let n = mesh.vertices.len() as u32;
        assert!(mesh.indices.iter().all(|&i| i < n));
        assert!(mesh.vertices.iter().all(|v| (v.slot as usize) < pts.len()));
        // Every residue is coloured somewhere.
        for r in 0..pts.len() as u32 {
            assert!(mesh.vertices.iter().any(|v| v.slot == r), "residue {r}");
        }
    }

    #[test]
    fn tube_breaks_at_gaps() {
        let mut pts = helix(10);
        pts.extend(helix(10).iter().map(|p| [p[0] + 50.0, p[1], p[2]]));
        let whole = tube(&pts[..10], 0.4, 4, 8, 4.5);
        let split = tube(&pts, 0.4, 4, 8, 4.5);
        assert_eq!(split.vertices.len(), 2 * whole.vertices.len());
    }

    #[test]
    fn context_tubes_give_each_chain_its_slot() {
        let a = helix(12);
        let b: Vec<[f32; 3]> = helix(8).iter().map(|p| [p[0] + 20.0, p[1], p[2]]).collect();
        let mesh = context_tubes(&[&a, &[[0.0; 3]], &b], 40, 0.3, 4.5);
        let slots: std::collections::BTreeSet<u32> = mesh.vertices.iter().map(|v| v.slot).collect();
        // The one-residue chain draws nothing; the others one slot each.
        assert_eq!(slots.into_iter().collect::<Vec<_>>(), [40, 42]);
        let alone =
            tube(&a, 0.3, 4, 8, 4.5).vertices.len() + tube(&b, 0.3, 4, 8, 4.5).vertices.len();
        assert_eq!(mesh.vertices.len(), alone);
        assert!(
            mesh.indices
                .iter()
                .all(|&i| (i as usize) < mesh.vertices.len())
        );
    }

    #[test]
    fn camera_fits_and_picks() {
        let pts = helix(40);
        let cam = Camera::fit(&pts);
        for p in &pts {
            let (x, y, z) = cam.project(*p, 800.0, 600.0).expect("in front");
            assert!(
                (0.0..=800.0).contains(&x) && (0.0..=600.0).contains(&y),
                "{x} {y}"
            );
            assert!((0.0..=1.0).contains(&z));
        }
        let (x, y, _) = cam.project(pts[17], 800.0, 600.0).expect("in front");
        assert_eq!(pick(&pts, &cam, 800.0, 600.0, x, y, 6.0), Some(17));
        assert_eq!(pick(&pts, &cam, 800.0, 600.0, -100.0, -100.0, 6.0), None);
    }

    #[test]
    fn camera_moves() {
        let pts = helix(40);
        let mut cam = Camera::fit(&pts);
        let before = cam.project(pts[0], 800.0, 600.0).expect("front");
        cam.orbit(100.0, 0.0);
        let orbited = cam.project(pts[0], 800.0, 600.0).expect("front");
        assert!((before.0 - orbited.0).abs() > 1.0);
        let mut panned = cam;
        panned.pan(50.0, 0.0, 600.0);
        let p = panned
            .project(cam.target.to_array(), 800.0, 600.0)
            .expect("front");
        assert!(
            (p.0 - 450.0).abs() < 0.5,
            "pan moves the scene with the pointer: {}",
            p.0
        );
        let d = cam.distance;
        cam.zoom(0.5);
        assert!((cam.distance - d * 0.5).abs() < 1e-3);
    }

    #[test]
    fn arrows() {
        let pts = helix(3);
        let field = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 100.0, 0.0];
        let mesh = field_arrows(&pts, &field, 2.0, 5.0, 7);
        // The zero vector draws nothing; the long one is capped.
        let one = arrow([0.0; 3], [2.0, 0.0, 0.0], 0.12, 7);
        assert_eq!(mesh.vertices.len(), 2 * one.vertices.len());
        // The second arrow's vertices (the first one's come first); its tip is the farthest.
        let far = mesh.vertices[one.vertices.len()..]
            .iter()
            .map(|v| (Vec3::from(v.position) - Vec3::from(pts[2])).length())
            .fold(0.0f32, f32::max);
        assert!(far <= 5.0 + 1e-3 && far > 4.9, "{far}");
    }
}
