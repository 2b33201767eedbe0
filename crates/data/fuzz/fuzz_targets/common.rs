// Shared by the fuzz targets (included with `include!`).

/// Load every image of a successfully parsed source; errors are fine,
/// panics are bugs.
fn exercise(result: stiffness_data::Result<Box<dyn stiffness_data::ImageSource>>) {
    if let Ok(source) = result {
        for i in 0..source.len().min(64) {
            let _ = source.load(i);
            assert!(source.label(i) < source.class_names().len());
        }
    }
}

#[allow(dead_code)]
/// Split fuzz input into two parts at a position given by its first byte.
fn split_two(data: &[u8]) -> (&[u8], &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return (&[], &[]);
    };
    let at = (usize::from(first) * rest.len()) / 255;
    rest.split_at(at.min(rest.len()))
}
