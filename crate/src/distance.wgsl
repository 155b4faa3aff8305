// Squared C-alpha distance map with the arithmetic of torch.cdist in f32 (see features.rs,
// torch_distance): exact differences for small sets, else the matmul form
// sqrt(max(a.b, 1e-30)) with a = [-2x, |x|^2, 1], b = [y, 1, |y|^2], accumulated by fused
// multiply-adds in order. The caller takes the (correctly rounded) square root.
struct Point {
    // x, y, z and |x|^2 as the CPU rounds it.
    xyzn: vec4<f32>,
    // .x: the point's squared distance to itself, computed on the CPU.
    self_distance: vec4<f32>,
}

struct Dims {
    rows: u32,
    cols: u32,
    matmul_form: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> rows: array<Point>;
@group(0) @binding(1) var<storage, read> cols: array<Point>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> dims: Dims;

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.y;
    let j = id.x;
    if (i >= dims.rows || j >= dims.cols) {
        return;
    }
    let p = rows[i];
    let q = cols[j];
    let x = p.xyzn.xyz;
    let y = q.xyzn.xyz;
    var d: f32;
    if (all(x == y)) {
        d = p.self_distance.x;
    } else if (dims.matmul_form != 0u) {
        var acc = (-2.0 * x.x) * y.x;
        acc = fma(-2.0 * x.y, y.y, acc);
        acc = fma(-2.0 * x.z, y.z, acc);
        acc = acc + p.xyzn.w;
        acc = acc + q.xyzn.w;
        d = max(acc, 1e-30);
    } else {
        let e = x - y;
        d = e.x * e.x + e.y * e.y + e.z * e.z;
    }
    out[i * dims.cols + j] = d;
}
