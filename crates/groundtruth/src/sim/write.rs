//! Writes a simulated recording folder, streaming the data block by block, atomically.

use std::path::{Path, PathBuf};

use kilosort::output_guard::{Occupant, check_free_space, check_output_folder};
use kilosort::probe::write_kilosort_json;
use ndarray::{Array1, Array2};
use ndarray_npy::write_npy;
use serde_json::json;

use super::config::SimulationConfig;
use super::drift::{DRIFT_FS, DriftField};
use super::output::{AlignedBytes, BlockFile, DIRECT_ALIGN};
use super::random::{Stream, stream, uniform};
use super::render::{Renderer, TEMPLATE_HALF_WIDTH};
use super::trains::draw_spikes;
use super::units::draw_units;

/// The description every simulation folder holds: the mark of a folder this simulator wrote.
pub const SIMULATION_FILE: &str = "simulation.json";

/// What a simulation produced (also written to disk).
#[derive(Debug, Clone)]
pub struct SimulationSummary {
    /// Channels per sample in `recording.bin`.
    pub n_chan_bin: usize,
    /// Samples written.
    pub n_samples: u64,
    /// Ground-truth spikes written.
    pub n_gt_spikes: usize,
    /// All spikes added, distractors included.
    pub n_all_spikes: usize,
}

/// Samples rendered and written at a time: memory is a few blocks whatever the duration (a
/// block's noise sources are 3 MB at 384 channels). A multiple of 2048, so that a block of int16
/// rows is a whole number of 4 kB pages for any channel count (see [`DIRECT_ALIGN`]).
const BLOCK_SAMPLES: usize = 2048;
const _: () = assert!((2 * BLOCK_SAMPLES).is_multiple_of(DIRECT_ALIGN));
/// Rendered blocks waiting for the writer thread.
const BLOCKS_IN_FLIGHT: usize = 2;

/// Simulates `config` into the folder `out` (created; an existing folder is replaced only when
/// `overwrite`). `progress` receives the fraction done.
pub fn simulate(
    config: &SimulationConfig,
    out: &Path,
    overwrite: bool,
    progress: &mut dyn FnMut(f64),
) -> kilosort::Result<SimulationSummary> {
    // Only an empty folder or an earlier simulation is replaced (never a user's files).
    check_output_folder(out, SIMULATION_FILE, overwrite, &[])?;
    let probe = super::probes::resolve(&config.probe)?;
    let n_chan_bin = probe.channel_map.iter().max().map_or(0, |&m| m as usize + 1);
    let n_samples = (config.duration_s * config.fs) as u64;
    let recording_bytes = n_samples.saturating_mul(2 * n_chan_bin as u64);
    check_free_space(out, recording_bytes, &format!("a {} s recording", config.duration_s))?;
    let tmp = partial_path(out);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io("cannot clear", &tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io("cannot create", &tmp))?;

    let mut rng = stream(config.seed, Stream::Channels);
    let noise_sd: Vec<f64> = (0..probe.len()).map(|_| config.noise_uv * uniform(&mut rng, 0.8, 1.2)).collect();
    let dc: Vec<f64> = (0..probe.len()).map(|_| uniform(&mut rng, -config.dc_offset_uv, config.dc_offset_uv)).collect();
    let units = draw_units(config, &probe, &noise_sd);
    let events = draw_spikes(config, &units);
    let y_range = probe.y.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &y| (lo.min(y as f64), hi.max(y as f64)));
    let drift = DriftField::draw(&config.drift, config.seed, config.duration_s, y_range);
    let mut renderer = Renderer::new(config, &probe, &units, &events, drift.as_ref(), &noise_sd, &dc);

    let bin_path = tmp.join("recording.bin");
    let file = BlockFile::create(&bin_path).map_err(io("cannot create", &bin_path))?;
    let row_bytes = 2 * n_chan_bin;
    let render = |start: u64, len: usize, bytes: &mut [u8]| {
        let next_len = BLOCK_SAMPLES.min((n_samples - start - len as u64) as usize);
        renderer.render(start as i64, len, next_len, bytes);
    };
    write_blocks(file, n_samples, row_bytes, progress, render).map_err(io("cannot write", &bin_path))?;

    write_kilosort_json(&probe, &tmp.join("probe.json"))?;
    let gt: Vec<_> = events.iter().filter(|e| !units[e.unit as usize].is_distractor).collect();
    let times = Array1::from_iter(gt.iter().map(|e| e.sample));
    let clusters = Array1::from_iter(gt.iter().map(|e| e.unit as i64));
    let npy = |name: &str| tmp.join(name);
    write_npy(npy("gt_spike_times.npy"), &times).map_err(|e| npy_error(&npy("gt_spike_times.npy"), e))?;
    write_npy(npy("gt_spike_clusters.npy"), &clusters).map_err(|e| npy_error(&npy("gt_spike_clusters.npy"), e))?;
    if let Some(d) = &drift {
        let rows = d.displacement.len();
        let table = Array2::from_shape_fn((rows, d.depths_um.len()), |(i, k)| d.displacement[i][k] as f32);
        write_npy(npy("drift_um.npy"), &table).map_err(|e| npy_error(&npy("drift_um.npy"), e))?;
    }
    let measured_sd = renderer.measured_noise_sd();
    let units_json: Vec<_> = units
        .iter()
        .map(|u| {
            let count = renderer.template_count[u.id].max(1) as f64;
            let peak = renderer.template_sum[u.id].iter().map(|s| -s / count).fold(0.0f64, f64::max);
            let sd = measured_sd[u.best_channel];
            json!({
                "unit_id": u.id, "x_um": u.x_um, "y_um": u.y_um, "z_um": u.z_um,
                "best_channel": u.best_channel, "best_channel_row": probe.channel_map[u.best_channel],
                "peak_uv": peak,
                "amplitude_uv": u.amplitude_uv, "noise_sd_uv": sd,
                "snr": peak / sd,
                "rate_hz": u.rate_hz, "n_spikes": events.iter().filter(|e| e.unit as usize == u.id).count(),
                "narrow": u.narrow, "is_distractor": u.is_distractor, "shape": u.shape,
            })
        })
        .collect();
    write_json(&tmp.join("gt_units.json"), &json!(units_json))?;
    let described = json!({
        "generator": "kilosort-rs simulate",
        "version": env!("CARGO_PKG_VERSION"),
        "config": config,
        "n_chan_bin": n_chan_bin,
        "n_samples": n_samples,
        "dtype": "int16",
        "uv_per_bit": config.uv_per_bit,
        "scale_note": "µV = int16 value × uv_per_bit",
        "template_half_width_samples": TEMPLATE_HALF_WIDTH,
        "drift": drift.as_ref().map(|d| json!({
            "sampling_frequency_hz": DRIFT_FS,
            "depths_um": d.depths_um,
            "sign": "positive = units move towards larger y relative to the probe",
        })),
    });
    write_json(&tmp.join(SIMULATION_FILE), &described)?;
    // score.py (SpikeInterface) reads meta.json: fs and n_samples.
    write_json(
        &tmp.join("meta.json"),
        &json!({"fs": config.fs, "n_samples": n_samples, "n_chan": n_chan_bin, "dtype": "int16", "name": config.preset}),
    )?;

    // Checked again: something may have appeared there meanwhile.
    if check_output_folder(out, SIMULATION_FILE, overwrite, &[])? == Occupant::OurFolder {
        std::fs::remove_dir_all(out).map_err(io("cannot replace", out))?;
    }
    std::fs::rename(&tmp, out).map_err(io("cannot move results into", out))?;
    Ok(SimulationSummary { n_chan_bin, n_samples, n_gt_spikes: gt.len(), n_all_spikes: events.len() })
}

/// The folder written before the final rename (beside the target, so the rename is atomic).
fn partial_path(out: &Path) -> PathBuf {
    let name = out.file_name().map_or("simulation".into(), |n| n.to_string_lossy().into_owned());
    out.with_file_name(format!(".{name}.partial"))
}

/// Renders the recording block by block with `render(start, len, bytes)` (`len` rows of
/// `row_bytes`) and appends the bytes to `file`, rendering and writing (kernel time) on
/// different threads so that they overlap. A few block buffers circulate between the two, which
/// bounds memory.
///
/// Rendering runs on a rayon pool thread: from outside the pool, every parallel loop would be
/// handed over to the pool's (often sleeping) threads and waited for, which costs more than the
/// loop itself with short blocks.
fn write_blocks(
    mut file: BlockFile,
    n_samples: u64,
    row_bytes: usize,
    progress: &mut dyn FnMut(f64),
    mut render: impl FnMut(u64, usize, &mut [u8]) + Send,
) -> std::io::Result<()> {
    let (to_writer, rendered) = std::sync::mpsc::sync_channel::<(AlignedBytes, u64)>(BLOCKS_IN_FLIGHT);
    let (recycle, recycled) = std::sync::mpsc::channel::<AlignedBytes>();
    let render_all = move |report: &mut dyn FnMut(f64)| {
        let mut start = 0u64;
        while start < n_samples {
            let len = BLOCK_SAMPLES.min((n_samples - start) as usize);
            let mut bytes = recycled.try_recv().unwrap_or_default();
            bytes.set_len(len * row_bytes);
            render(start, len, bytes.as_mut_slice());
            start += len as u64;
            if to_writer.send((bytes, start)).is_err() {
                return; // the writer stopped on an error, which it returns
            }
            report(start as f64 / n_samples as f64);
        }
        drop(to_writer); // tells the writer that this was the last block
    };
    let write_all = move |report: &mut dyn FnMut(f64)| -> std::io::Result<()> {
        for (bytes, end) in rendered {
            file.append(bytes.as_slice())?;
            // The renderer may have finished already; then the buffer is simply dropped.
            let _ = recycle.send(bytes);
            report(end as f64 / n_samples as f64);
        }
        file.finish()
    };
    if rayon::current_thread_index().is_some() {
        // Already on a pool thread (inside `ThreadPool::install`): render here, write beside.
        std::thread::scope(|scope| {
            let writer = scope.spawn(move || write_all(&mut |_| {}));
            render_all(progress);
            writer.join().expect("the writer thread does not panic")
        })
    } else {
        // Render on a pool thread; write and report progress here.
        rayon::in_place_scope(|scope| {
            scope.spawn(move |_| render_all(&mut |_| {}));
            write_all(progress)
        })
    }
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl Fn(std::io::Error) -> kilosort::Error + 'a {
    move |e| kilosort::Error::io(action, path, e)
}

fn write_json(path: &Path, value: &serde_json::Value) -> kilosort::Result<()> {
    let text = serde_json::to_string_pretty(value).expect("plain JSON values serialise");
    std::fs::write(path, text).map_err(|e| kilosort::Error::io("cannot write", path, e))
}

fn npy_error(path: &Path, e: ndarray_npy::WriteNpyError) -> kilosort::Error {
    kilosort::Error::io("cannot write", path, std::io::Error::other(e.to_string()))
}
