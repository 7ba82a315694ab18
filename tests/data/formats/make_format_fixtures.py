"""Make small recording fixtures in tests/data/formats/ and the answers of
independent Python readers for them.

Run from the repository root with:

    ~/ks-bench/fmtenv/bin/python tests/data/formats/make_format_fixtures.py

Environment used (a venv made with `pip install numpy neo probeinterface
spikeinterface mtscomp pynwb hdmf h5py`, Python 3.11.7):

    numpy 2.4.6, neo 0.14.6, probeinterface 0.4.2, spikeinterface 0.105.3,
    mtscomp 1.0.2, pynwb 4.2.0, hdmf 6.2.0, h5py 3.16.0

Everything is written by the code below (fixed seeds, fixed dates and serial
numbers); the file layouts follow the formats' published descriptions:

* SpikeGLX: the SpikeGLX metadata help (Metadata_30 / Metadata_Help), the
  imro table formats and the way SpikeGLX writes ~snsChanMap, ~snsShankMap and
  ~snsGeomMap for saved channels.  Meta files use CRLF line ends, like
  SpikeGLX on Windows.
* Open Ephys GUI 0.6.7 binary format (structure.oebin, continuous.dat,
  sample_numbers.npy, timestamps.npy) and the Neuropix-PXI plugin's NP_PROBE
  element in settings.xml.
* Intan "RHD2000 data file formats" application note (traditional and
  one-file-per-signal-type layouts).
* mtscomp: compressed by the real mtscomp package.
* NWB: written by the real pynwb.

Then the fixtures are read back with neo.rawio, probeinterface and
SpikeInterface's extractors (and mtscomp / pynwb / h5py), and what they return
is saved next to each fixture (expected_*.npy, expected.json).  The script
also checks that the readers give back exactly the samples that were written.

Two runs give byte-identical files (the NWB object ids come from a seeded
generator).  Known reader limits met on the way are listed in README.md.
"""

import hashlib
import json
import shutil
import struct
import warnings
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent

N_SAMPLES = 3840  # divisible by 60 and 128 (Intan blocks) and 12 (NP LFP)
SEED = 20240611

warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", category=FutureWarning)


# ----------------------------------------------------------------------------
# Source signal
# ----------------------------------------------------------------------------


def source_signal(n_samples=N_SAMPLES, n_channels=16, seed=SEED):
    """Deterministic int16 (n_samples, n_channels) signal within +-512.

    Gaussian noise (sd 12), a 7 Hz wobble, a per-channel DC offset of
    10 * c - 75 (so that every channel can be told apart), and spikes of
    three units, each spread over 3-4 neighbouring channels.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples)
    x = rng.normal(0.0, 12.0, size=(n_samples, n_channels))
    phases = rng.uniform(0, 2 * np.pi, size=n_channels)
    x += 6.0 * np.sin(2 * np.pi * 7.0 * t[:, None] / 30000.0 + phases[None, :])
    x += (10.0 * np.arange(n_channels) - 75.0)[None, :]

    # spike waveform: trough then a slower positive rebound, 48 samples
    w = np.arange(48)
    wave = -np.exp(-0.5 * ((w - 12) / 2.5) ** 2) + 0.35 * np.exp(-0.5 * ((w - 22) / 5.0) ** 2)
    units = [
        (-260.0, {1: 0.45, 2: 1.0, 3: 0.6, 4: 0.2}),
        (-190.0, {6: 0.5, 7: 1.0, 8: 0.7}),
        (-140.0, {10: 0.3, 11: 0.8, 12: 1.0, 13: 0.4}),
    ]
    for amp, spread in units:
        n_spikes = 9
        times = np.sort(rng.choice(np.arange(20, n_samples - 60), size=n_spikes, replace=False))
        for t0 in times:
            for c, k in spread.items():
                if c < n_channels:
                    x[t0 : t0 + 48, c] += amp * k * wave
    return np.clip(np.round(x), -512, 511).astype(np.int16)


def sync_word(n_samples=N_SAMPLES, period=1000, offset=370):
    """SpikeGLX-like status word: bit 6 carries a square wave."""
    t = np.arange(n_samples)
    return np.where(((t + offset) // period) % 2 == 1, 64, 0).astype(np.int16)


SIGNAL = source_signal()
SYNC = sync_word()


def sha1_hex(path):
    return hashlib.sha1(Path(path).read_bytes()).hexdigest().upper()


def fresh_dir(path):
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def save_json(path, obj):
    path.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def fmt_num(v):
    """Number as SpikeGLX writes it: integers without a decimal point."""
    v = float(v)
    return str(int(v)) if v == int(v) else repr(v)


# ----------------------------------------------------------------------------
# SpikeGLX
# ----------------------------------------------------------------------------

# NP 2.0 four-shank (imro type 24) channel -> electrode block map: channel
# block (48 channels) b on shank s goes to electrode block T24_BLOCKS[s][b].
T24_BLOCKS = [
    [0, 6, 1, 7, 2, 4, 3, 5],
    [6, 0, 7, 1, 4, 2, 5, 3],
    [2, 4, 3, 5, 0, 6, 1, 7],
    [4, 2, 5, 3, 6, 0, 7, 1],
]


def t24_electrode(ch, shank, bank):
    block, sub = divmod(ch, 48)
    return 384 * bank + 48 * T24_BLOCKS[shank][block] + sub


def parse_subset(text):
    out = []
    for part in text.split(","):
        if ":" in part:
            a, b = part.split(":")
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return out


def write_meta(path, entries):
    """entries: dict key -> value (str).  Sorted like SpikeGLX, CRLF ends."""
    lines = [f"{k}={entries[k]}" for k in sorted(entries)]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("ascii"))


def np1_tables(saved_ap, banks, ap_gain=500, lf_gain=250, geom=True, pn="NP1000"):
    """imroTbl, snsChanMap, snsShankMap / snsGeomMap for an NP 1.0 probe.

    saved_ap: saved AP channel indices; banks: dict channel -> bank (0 when
    absent).  Returns (imro, chanmap, shank_or_geom, electrodes, positions).
    """
    imro = "(0,384)" + "".join(
        f"({ch} {banks.get(ch, 0)} 0 {ap_gain} {lf_gain} 1)" for ch in range(384)
    )
    chanmap = "(384,384,1)" + "".join(f"(AP{ch};{ch}:{ch})" for ch in saved_ap) + "(SY0;768:768)"
    electrodes, pos = [], []
    entries = []
    for ch in saved_ap:
        el = banks.get(ch, 0) * 384 + ch
        row, col = divmod(el, 2)
        used = 0 if ch == 191 else 1
        x = (11 if row % 2 else 27) + 32 * col  # x0 odd row 11, even row 27, pitch 32
        z = 20 * row
        electrodes.append(el)
        pos.append((x, z))
        if geom:
            entries.append(f"(0:{fmt_num(x)}:{fmt_num(z)}:{used})")
        else:
            entries.append(f"(0:{col}:{row}:{used})")  # hardware columns, as pre-2023
    if geom:
        table = f"({pn},1,0,70)" + "".join(entries)
    else:
        table = "(1,2,480)" + "".join(entries)
    return imro, chanmap, table, electrodes, pos


def common_imec_meta(bin_path, n_saved, fs, orig_name, first_sample, app_version):
    size = bin_path.stat().st_size
    return {
        "appVersion": app_version,
        "fileCreateTime": "2023-09-04T16:03:26",
        "fileName": orig_name,
        "fileSHA1": sha1_hex(bin_path),
        "fileSizeBytes": str(size),
        "fileTimeSecs": repr(size / 2 / n_saved / fs),
        "firstSample": str(first_sample),
        "gateMode": "Immediate",
        "nDataDirs": "1",
        "nSavedChans": str(n_saved),
        "syncImInputSlot": "2",
        "syncSourceIdx": "0",
        "syncSourcePeriod": "1",
        "trigMode": "Immediate",
        "typeImEnabled": "1",
        "typeNiEnabled": "0",
        "typeThis": "imec",
        "userNotes": "",
    }


def write_spikeglx_bin(folder, n_ap):
    data = np.concatenate([SIGNAL[:, :n_ap], SYNC[:, None]], axis=1)
    bin_path = folder / "rec_g0_t0.imec0.ap.bin"
    data.astype("<i2").tofile(bin_path)
    return bin_path, data


def make_spikeglx_geommap():
    folder = fresh_dir(OUT / "spikeglx_geommap")
    saved_ap = list(range(12))
    banks = {**{ch: 1 for ch in range(4, 8)}, **{ch: 2 for ch in range(8, 12)}}
    subset = "0:11,768"
    assert parse_subset(subset) == saved_ap + [768]
    bin_path, data = write_spikeglx_bin(folder, len(saved_ap))
    fs = "30000.12345"
    imro, chanmap, geom, electrodes, pos = np1_tables(saved_ap, banks, geom=True, pn="NP1000")
    meta = common_imec_meta(
        bin_path, len(saved_ap) + 1, float(fs),
        "D:/SGL_DATA/rec_g0/rec_g0_imec0/rec_g0_t0.imec0.ap.bin", 1234567, "20230815",
    )
    meta.update({
        "acqApLfSy": "384,384,1",
        "imAiRangeMax": "0.6",
        "imAiRangeMin": "-0.6",
        "imAnyChanFullBand": "false",
        "imCalibrated": "true",
        "imChan0apGain": "500",
        "imChan0lfGain": "250",
        "imDatApi": "3.62",
        "imDatBs_fw": "2.0.169",
        "imDatBsc_fw": "3.2.189",
        "imDatBsc_hw": "2.1",
        "imDatBsc_pn": "NP2_QBSC_00",
        "imDatBsc_sn": "412",
        "imDatFx_hw": "4.13",
        "imDatFx_pn": "NP2_FLEX_0",
        "imDatFx_sn": "0",
        "imDatHs_hw": "4.9",
        "imDatHs_pn": "NP2_HS_30",
        "imDatHs_sn": "411",
        "imDatPrb_dock": "1",
        "imDatPrb_pn": "NP1000",
        "imDatPrb_port": "2",
        "imDatPrb_slot": "2",
        "imDatPrb_sn": "19398105682",
        "imDatPrb_type": "0",
        "imErrFlags_IS_CT_SR_LK_PP_SY": "0 0 0 0 0 0",
        "imIsSvyRun": "false",
        "imLEDEnable": "false",
        "imLowLatency": "false",
        "imMaxInt": "512",
        "imSampRate": fs,
        "imStdby": "",
        "imSvyMaxBnk": "-1",
        "imSvySecPerBnk": "60",
        "imTipLength": "209",
        "imTrgRising": "true",
        "imTrgSource": "0",
        "imroFile": "",
        "snsApLfSy": f"{len(saved_ap)},0,1",
        "snsSaveChanSubset": subset,
        "typeObEnabled": "0",
        "~imroTbl": imro,
        "~snsChanMap": chanmap,
        "~snsGeomMap": geom,
    })
    write_meta(folder / "rec_g0_t0.imec0.ap.meta", meta)
    return folder, data, {"electrodes": electrodes, "geom_positions": pos, "saved_ap": saved_ap}


def make_spikeglx_imro_np1():
    folder = fresh_dir(OUT / "spikeglx_imro_np1")
    saved_ap = [0, 1, 2, 3, 4, 5, 10, 11, 12, 13]
    banks = {ch: 1 for ch in range(10, 14)}
    subset = "0:5,10:13,768"
    assert parse_subset(subset) == saved_ap + [768]
    bin_path, data = write_spikeglx_bin(folder, len(saved_ap))
    fs = "29999.912"
    imro, chanmap, shank, electrodes, pos = np1_tables(saved_ap, banks, geom=False)
    meta = common_imec_meta(
        bin_path, len(saved_ap) + 1, float(fs),
        "C:/SGL_DATA/rec_g0/rec_g0_imec0/rec_g0_t0.imec0.ap.bin", 177385, "20190413",
    )
    meta["fileCreateTime"] = "2019-05-14T10:35:10"
    meta.pop("nDataDirs")
    meta.update({
        "acqApLfSy": "384,384,1",
        "imAiRangeMax": "0.6",
        "imAiRangeMin": "-0.6",
        "imCalibrated": "true",
        "imDatApi": "1.15",
        "imDatBs_fw": "1.1.128",
        "imDatBsc_fw": "1.0.151",
        "imDatBsc_hw": "2.1",
        "imDatBsc_pn": "NP2_QBSC_00",
        "imDatBsc_sn": "434",
        "imDatFx_hw": "1.2",
        "imDatFx_pn": "NP2_FLEX_0",
        "imDatHs_fw": "5.1",
        "imDatHs_pn": "NP2_HS_30",
        "imDatHs_sn": "1116",
        "imDatPrb_pn": "PRB_1_4_0480_1",
        "imDatPrb_port": "2",
        "imDatPrb_slot": "2",
        "imDatPrb_sn": "18194809281",
        "imDatPrb_type": "0",
        "imLEDEnable": "false",
        "imRoFile": "C:/SpikeGLX/Release_v20190413-phase3B2/SpikeGLX/Gain_ap500_lf250_bank1.imro",
        "imSampRate": fs,
        "imStdby": "",
        "imTrgRising": "true",
        "imTrgSource": "0",
        "snsApLfSy": f"{len(saved_ap)},0,1",
        "snsSaveChanSubset": subset,
        "~imroTbl": imro,
        "~snsChanMap": chanmap,
        "~snsShankMap": shank,
    })
    write_meta(folder / "rec_g0_t0.imec0.ap.meta", meta)
    return folder, data, {"electrodes": electrodes, "saved_ap": saved_ap}


def make_spikeglx_imro_np2_4shank():
    folder = fresh_dir(OUT / "spikeglx_imro_np2_4shank")
    saved_ap = [0, 1, 2, 100, 101, 102, 200, 201, 202, 300, 301, 302]
    subset = "0:2,100:102,200:202,300:302,384"
    assert parse_subset(subset) == saved_ap + [384]
    bin_path, data = write_spikeglx_bin(folder, len(saved_ap))
    fs = "29999.8642"

    def shank_bank(ch):
        shank = ch // 96
        return shank, (1 if shank == 3 else 0)

    imro_entries = []
    for ch in range(384):
        s, b = shank_bank(ch)
        imro_entries.append(f"({ch} {s} {b} 0 {t24_electrode(ch, s, b)})")
    imro = "(24,384)" + "".join(imro_entries)
    chanmap = "(384,0,1)" + "".join(f"(AP{ch};{ch}:{ch})" for ch in saved_ap) + "(SY0;384:384)"
    shank_entries, electrodes, shanks = [], [], []
    for ch in saved_ap:
        s, b = shank_bank(ch)
        el = t24_electrode(ch, s, b)
        row, col = divmod(el, 2)
        shank_entries.append(f"({s}:{col}:{row}:{0 if ch == 127 else 1})")
        electrodes.append(el)
        shanks.append(s)
    shankmap = "(4,2,640)" + "".join(shank_entries)
    meta = common_imec_meta(
        bin_path, len(saved_ap) + 1, float(fs),
        "D:/SGL_DATA/rec_g0/rec_g0_imec0/rec_g0_t0.imec0.ap.bin", 94827, "20220101",
    )
    meta["fileCreateTime"] = "2022-03-01T14:13:34"
    meta.update({
        "acqApLfSy": "384,0,1",
        "imAiRangeMax": "0.5",
        "imAiRangeMin": "-0.5",
        "imCalibrated": "true",
        "imDatApi": "3.31",
        "imDatBs_fw": "2.0.137",
        "imDatBsc_fw": "3.2.176",
        "imDatBsc_hw": "2.1",
        "imDatBsc_pn": "NP2_QBSC_00",
        "imDatBsc_sn": "699",
        "imDatFx_hw": "1.8",
        "imDatFx_pn": "NPM_FLEX_0",
        "imDatHs_fw": "2.9",
        "imDatHs_pn": "NPM_HS_30",
        "imDatHs_sn": "20250098",
        "imDatPrb_dock": "1",
        "imDatPrb_pn": "NP2010",
        "imDatPrb_port": "4",
        "imDatPrb_slot": "2",
        "imDatPrb_sn": "19122510362",
        "imDatPrb_type": "24",
        "imLEDEnable": "false",
        "imMaxInt": "8192",
        "imRoFile": "D:/SGL_DATA/NPtype24_4shanks_mixed.imro",
        "imSampRate": fs,
        "imStdby": "",
        "imTrgRising": "true",
        "imTrgSource": "0",
        "snsApLfSy": f"{len(saved_ap)},0,1",
        "snsSaveChanSubset": subset,
        "~imroTbl": imro,
        "~snsChanMap": chanmap,
        "~snsShankMap": shankmap,
    })
    write_meta(folder / "rec_g0_t0.imec0.ap.meta", meta)
    return folder, data, {"electrodes": electrodes, "shanks": shanks, "saved_ap": saved_ap}


# ----------------------------------------------------------------------------
# Open Ephys binary (GUI 0.6.7, Neuropix-PXI plugin 0.6.6, NP 1.0 probe)
# ----------------------------------------------------------------------------

OE_BIT_VOLTS = 0.1949999928474426  # 0.195 as float32, as the GUI writes it
OE_SAVED = [0, 1, 2, 3, 150, 151, 152, 153, 380, 381, 382, 383]
OE_BANKS = {ch: 1 for ch in range(150, 154)}


def oe_settings_xml(saved, banks):
    def attrs(values, order):
        return " ".join(f'CH{ch}="{values[ch]}"' for ch in order)

    el = {ch: banks.get(ch, 0) * 384 + ch for ch in range(384)}
    xpos, ypos, bank = {}, {}, {}
    for ch in range(384):
        row, col = divmod(el[ch], 2)
        xpos[ch] = (11 if row % 2 else 27) + 32 * col
        ypos[ch] = 20 * row
        bank[ch] = banks.get(ch, 0)
    order = sorted(range(384), key=lambda ch: el[ch])  # attribute order as by electrode
    state = "".join("1" if ch in saved else "0" for ch in range(384)) + "0"  # SYNC not recorded
    stream_ap = ('name="ProbeA-AP" description="description" sample_rate="30000.0" '
                 'channel_count="385" device_name="Neuropixels 1.0"')
    stream_lf = ('name="ProbeA-LFP" description="description" sample_rate="2500.0" '
                 'channel_count="385" device_name="Neuropixels 1.0"')
    return f"""<?xml version="1.0" encoding="UTF-8"?>

<SETTINGS>
  <INFO>
    <VERSION>0.6.7</VERSION>
    <PLUGIN_API_VERSION>8</PLUGIN_API_VERSION>
    <DATE>6 Mar 2024 14:48:00</DATE>
    <OS>Windows 10</OS>
    <MACHINE name="RIG-1" cpu_model="Intel(R) Core(TM) i7-12700K" cpu_num_cores="20"/>
  </INFO>
  <SIGNALCHAIN>
    <PROCESSOR name="Neuropix-PXI" insertionPoint="0" pluginName="Neuropix-PXI"
               type="4" index="0" libraryName="Neuropix-PXI" libraryVersion="0.6.6"
               processorType="2" nodeId="100">
      <GLOBAL_PARAMETERS/>
      <STREAM {stream_ap}>
        <PARAMETERS/>
      </STREAM>
      <STREAM {stream_lf}>
        <PARAMETERS/>
      </STREAM>
      <CUSTOM_PARAMETERS/>
      <EDITOR isCollapsed="0" isDrawerOpen="1" displayName="Neuropix-PXI" activeStream="0"
              Type="Visualizer">
        <TAB Active="0" Index="-1"/>
        <WINDOW Active="0"/>
        <NEUROPIXELS_EDITOR MainSyncSlot="0" SendSyncAsContinuous="1" SyncDirection="1" SyncFreq="0">
          <BASESTATION Directory="" Slot="2" NamingScheme="0"/>
          <CUSTOM_PROBE_NAMES/>
        </NEUROPIXELS_EDITOR>
        <NP_PROBE slot="2" bs_firmware_version="2.0169" bs_hardware_version="UNKNOWN"
                  bs_serial_number="0" bs_part_number="NeurPix2 PXI Carrier" bsc_firmware_version="3.2189"
                  bsc_hardware_version="2.1" bsc_serial_number="261" bsc_part_number="NP2_QBSC_00"
                  headstage_serial_number="586" headstage_part_number="NP2_HS_30"
                  flex_version="1.2" flex_part_number="NP2_HS_30" port="1" dock="1"
                  probe_serial_number="19076614471" probe_part_number="PRB_1_4_0480_1_C"
                  probe_name="Neuropixels 1.0" num_adcs="32" custom_probe_name="19076614471"
                  ZoomHeight="120" ZoomOffset="0" apGainValue="500x" apGainIndex="3"
                  lfpGainValue="250x" lfpGainIndex="2" electrodeConfigurationPreset="NONE"
                  referenceChannel="Ext" referenceChannelIndex="0" filterCut="ON"
                  filterCutIndex="1" visualizationMode="0" activityToView="0">
          <CHANNELS {attrs(bank, order)}/>
          <ELECTRODE_XPOS {attrs(xpos, order)}/>
          <ELECTRODE_YPOS {attrs(ypos, order)}/>
        </NP_PROBE>
      </EDITOR>
    </PROCESSOR>
    <PROCESSOR name="Record Node" insertionPoint="1" pluginName="Record Node"
               type="0" index="3" libraryName="" libraryVersion="" processorType="8"
               nodeId="101">
      <GLOBAL_PARAMETERS/>
      <STREAM {stream_ap}>
        <PARAMETERS enable_stream="1"/>
      </STREAM>
      <STREAM {stream_lf}>
        <PARAMETERS enable_stream="1"/>
      </STREAM>
      <CUSTOM_PARAMETERS path="D:\\OE_DATA" engine="BINARY" recordEvents="1" recordSpikes="0"
                         fifoMonitorsVisible="1">
        <STREAM isMainStream="1" sync_line="0" name="ProbeA-AP" source_node_id="100"
                sample_rate="30000.0" channel_count="385" device_name="Neuropixels 1.0"
                recording_state="{state}"/>
        <STREAM isMainStream="0" sync_line="0" name="ProbeA-LFP" source_node_id="100"
                sample_rate="2500.0" channel_count="385" device_name="Neuropixels 1.0"
                recording_state="{state}"/>
      </CUSTOM_PARAMETERS>
      <EDITOR isCollapsed="0" isDrawerOpen="1" displayName="Record Node" activeStream="0"/>
    </PROCESSOR>
  </SIGNALCHAIN>
  <EDITORVIEWPORT scroll="0">
    <NEUROPIX-PXI ID="100"/>
    <RECORD_NODE ID="101"/>
  </EDITORVIEWPORT>
  <DATAVIEWPORT selectedTab="2"/>
  <CONTROLPANEL isOpen="1" recordPath="D:\\OE_DATA" recordEngine="BINARY"/>
  <FILENAMECONFIG>
    <PREPEND state="0" value=""/>
    <MAIN state="1" value="2024-03-06_14-48-00"/>
    <APPEND state="0" value=""/>
  </FILENAMECONFIG>
</SETTINGS>
"""


def oe_channels(prefix, saved, banks):
    chans = []
    for ch in saved:
        chans.append({
            "channel_name": f"{prefix}{ch + 1}",
            "description": "Neuropixels electrode",
            "identifier": "",
            "history": "Neuropix-PXI -> Record Node",
            "bit_volts": OE_BIT_VOLTS,
            "units": "",
            "channel_metadata": [{
                "name": "electrode_index",
                "description": "Electrode index for this channel",
                "identifier": "neuropixels.electrode_index",
                "type": "uint16",
                "length": 1,
                "value": [banks.get(ch, 0) * 384 + ch],
            }],
        })
    return chans


def make_openephys():
    folder = fresh_dir(OUT / "openephys_binary")
    node = folder / "Record Node 101"
    rec = node / "experiment1" / "recording1"
    n = len(OE_SAVED)
    ap = SIGNAL[:, :n]
    lf = ap[::12]  # a stand-in for the LFP band
    ap_first, lf_first = 4512345, 4512345 // 12
    streams = [
        ("ProbeA-AP", "AP", 30000.0, ap, ap_first),
        ("ProbeA-LFP", "LFP", 2500.0, lf, lf_first),
    ]
    oebin = {"GUI version": "0.6.7", "continuous": [], "events": [], "spikes": []}
    for stream, prefix, fs, data, first in streams:
        d = rec / "continuous" / f"Neuropix-PXI-100.{stream}"
        d.mkdir(parents=True)
        data.astype("<i2").tofile(d / "continuous.dat")
        sn = np.arange(first, first + data.shape[0], dtype=np.int64)
        np.save(d / "sample_numbers.npy", sn)
        np.save(d / "timestamps.npy", sn / fs)
        oebin["continuous"].append({
            "folder_name": f"Neuropix-PXI-100.{stream}/",
            "sample_rate": fs,
            "source_processor_name": "Neuropix-PXI",
            "source_processor_id": 100,
            "stream_name": stream,
            "recorded_processor": "Record Node",
            "recorded_processor_id": 101,
            "num_channels": n,
            "channels": oe_channels(prefix, OE_SAVED, OE_BANKS),
        })
    (rec / "structure.oebin").write_text(json.dumps(oebin, indent=4) + "\n")
    (node / "settings.xml").write_text(oe_settings_xml(OE_SAVED, OE_BANKS))
    electrodes = [OE_BANKS.get(ch, 0) * 384 + ch for ch in OE_SAVED]
    return folder, ap, {"electrodes": electrodes, "ap_first_sample": ap_first,
                        "lf_first_sample": lf_first, "lf": lf}


# ----------------------------------------------------------------------------
# Intan RHD2000
# ----------------------------------------------------------------------------


def qstring(s):
    if s is None:
        return struct.pack("<I", 0xFFFFFFFF)
    b = s.encode("utf-16-le")
    return struct.pack("<I", len(b)) + b


def rhd_channel(native, custom, native_order, custom_order, signal_type, enabled, chip_ch,
                board_stream=0, impedance=(0.0, 0.0)):
    return (qstring(native) + qstring(custom)
            + struct.pack("<hhhhhh", native_order, custom_order, signal_type, enabled, chip_ch,
                          board_stream)
            + struct.pack("<hhhh", 0, 0, 0, 0)  # spike scope: trigger mode, threshold, dig ch, edge
            + struct.pack("<ff", *impedance))


def rhd_header(version, fs, notes, n_temp, groups, reference="n/a", eval_board_mode=0):
    """groups: list of (name, prefix, enabled, channel_bytes_list, n_amplified)."""
    major, minor = version
    h = struct.pack("<Ihh", 0xC6912702, major, minor)
    h += struct.pack("<f", fs)
    h += struct.pack("<h", 1)  # dsp enabled
    h += struct.pack("<fff", 1.165, 0.0954, 7604.0)  # actual dsp cutoff, lower bw, upper bw
    h += struct.pack("<fff", 1.0, 0.1, 7500.0)  # desired dsp cutoff, lower bw, upper bw
    h += struct.pack("<h", 0)  # notch filter mode
    h += struct.pack("<ff", 1000.0, 1000.0)  # desired / actual impedance test frequency
    for note in notes:
        h += qstring(note)
    if (major, minor) >= (1, 1):
        h += struct.pack("<h", n_temp)
    if (major, minor) >= (1, 3):
        h += struct.pack("<h", eval_board_mode)
    if major >= 2:
        h += qstring(reference)
    h += struct.pack("<h", len(groups))
    for name, prefix, enabled, chans, n_amp in groups:
        h += qstring(name) + qstring(prefix)
        h += struct.pack("<hhh", enabled, len(chans), n_amp)
        for c in chans:
            h += c
    return h


def port_a_group(n_listed=9, disabled=(3,), custom=None, with_aux=True):
    """Port A: n_listed amplifier channels (some disabled), 3 aux, 1 supply."""
    custom = custom or {}
    chans, enabled_names = [], []
    for i in range(n_listed):
        native = f"A-{i:03d}"
        en = 0 if i in disabled else 1
        chans.append(rhd_channel(native, custom.get(i, native), i, i, 0, en, i,
                                 impedance=(float(50000 + 1000 * i), -45.0)))
        if en:
            enabled_names.append(native)
    if with_aux:
        for k in range(3):
            chans.append(rhd_channel(f"A-AUX{k + 1}", f"AUX{k + 1}", 32 + k, 32 + k, 1, 1, 32 + k))
        chans.append(rhd_channel("A-VDD1", "VDD1", 0, 0, 2, 1, 0))
    return ("Port A", "A", 1, chans, n_listed), enabled_names


def empty_group(name, prefix):
    return (name, prefix, 0, [], 0)


def rhd_blocks(amp_u16, timestamps, n_block, aux=None, supply=None, temp=None, adc=None,
               din=None):
    """Data blocks: timestamps, amplifier, aux (N/4), supply (1), temperature (1),
    board ADC (N), digital-in word (N), each channel's samples contiguous."""
    out = bytearray()
    n_total = amp_u16.shape[0]
    for b in range(n_total // n_block):
        s = slice(b * n_block, (b + 1) * n_block)
        out += timestamps[s].astype("<i4").tobytes()
        out += np.ascontiguousarray(amp_u16[s].T).astype("<u2").tobytes()
        if aux is not None:
            q = slice(b * n_block // 4, (b + 1) * n_block // 4)
            out += np.ascontiguousarray(aux[q].T).astype("<u2").tobytes()
        if supply is not None:
            out += supply[b].astype("<u2").tobytes()
        if temp is not None:
            out += temp[b].astype("<i2").tobytes()
        if adc is not None:
            out += np.ascontiguousarray(adc[s].T).astype("<u2").tobytes()
        if din is not None:
            out += din[s].astype("<u2").tobytes()
    return bytes(out)


def intan_aux_streams(n, n_block, rng):
    n_aux = n // 4
    aux = (np.round(1.7 / 37.4e-6 + rng.normal(0, 40, size=(n_aux, 3)))).astype(np.uint16)
    supply = (np.round(3.3 / 74.8e-6 + rng.normal(0, 5, size=(n // n_block, 1)))).astype(np.uint16)
    return aux, supply


def make_intan_traditional(version, folder_name, fs, first_ts, with_temp):
    folder = fresh_dir(OUT / folder_name)
    rng = np.random.default_rng(SEED + version[0])
    n_block = 60 if version[0] == 1 else 128
    n = N_SAMPLES
    assert n % n_block == 0
    group_a, amp_names = port_a_group(custom={5: "tetrode2-b"})
    digital_chans = []
    for i in range(16):
        digital_chans.append(rhd_channel(f"DIN-{i:02d}", f"DIN-{i:02d}", i, i, 4,
                                         1 if i in (0, 3) else 0, i))
    adc_chans = [rhd_channel(f"ADC-{i:02d}", f"ADC-{i:02d}", i, i, 3, 1 if i == 0 else 0, i)
                 for i in range(8)]
    dout_chans = [rhd_channel(f"DOUT-{i:02d}", f"DOUT-{i:02d}", i, i, 5, 0, i) for i in range(16)]
    groups = [
        group_a,
        empty_group("Port B", "B"),
        empty_group("Port C", "C"),
        empty_group("Port D", "D"),
        ("Board ADC Inputs", "ADC", 1, adc_chans, 0),
        ("Board Digital Inputs", "DIN", 1, digital_chans, 0),
        ("Board Digital Outputs", "DOUT", 1, dout_chans, 0),
    ]
    n_temp = 1 if with_temp else 0
    header = rhd_header(version, fs, ["kilosort-rs fixture", "", "port A, 8 of 9 amplifier channels"],
                        n_temp, groups, reference="A-008")
    amp = SIGNAL[:, : len(amp_names)]
    amp_u16 = (amp.astype(np.int32) + 32768).astype(np.uint16)
    ts = np.arange(first_ts, first_ts + n, dtype=np.int32)
    aux, supply = intan_aux_streams(n, n_block, rng)
    temp = np.full((n // n_block, n_temp), 3712, dtype=np.int16) if n_temp else None
    adc = (32768 + 2000 * np.sin(np.arange(n) / 50.0)).astype(np.uint16)[:, None]
    din = (((np.arange(n) // 500) % 2) | (((np.arange(n) // 777) % 2) << 3)).astype(np.uint16)
    blocks = rhd_blocks(amp_u16, ts, n_block, aux=aux, supply=supply, temp=temp, adc=adc, din=din)
    path = folder / "rec_240306_144800.rhd"
    path.write_bytes(header + blocks)
    return folder, path, amp, {"header_bytes": len(header), "n_block": n_block,
                               "first_timestamp": int(first_ts), "amp_u16": amp_u16}


def make_intan_one_file_per_signal():
    folder = fresh_dir(OUT / "intan_one_file_per_type")
    fs = 25000.0
    first_ts = -3000  # triggered recording: samples before the trigger have negative timestamps
    group_a, amp_names = port_a_group(n_listed=8, disabled=(), with_aux=False)
    groups = [group_a, empty_group("Port B", "B"), empty_group("Port C", "C"),
              empty_group("Port D", "D")]
    header = rhd_header((3, 2), fs, ["", "", ""], 0, groups, reference="Hardware")
    (folder / "info.rhd").write_bytes(header)
    amp = SIGNAL[:, : len(amp_names)]
    amp.astype("<i2").tofile(folder / "amplifier.dat")
    np.arange(first_ts, first_ts + N_SAMPLES, dtype="<i4").tofile(folder / "time.dat")
    return folder, amp, {"first_timestamp": first_ts, "fs": fs}


# ----------------------------------------------------------------------------
# mtscomp (IBL .cbin)
# ----------------------------------------------------------------------------


def make_mtscomp():
    import mtscomp

    folder = fresh_dir(OUT / "mtscomp")
    n_ap = 8
    data = np.concatenate([SIGNAL[:, :n_ap], SYNC[:, None]], axis=1).copy()
    # A clipped artefact on channel 5: the time diff wraps around in int16.
    data[3000:3004, 5] = 32767
    data[3004:3006, 5] = -32768
    stem = "_spikeglx_ephysData_g0_t0.imec0.ap"
    bin_path = folder / f"{stem}.bin"
    data.astype("<i2").tofile(bin_path)
    fs = 30000.0
    mtscomp.compress(bin_path, folder / f"{stem}.cbin", folder / f"{stem}.ch",
                     sample_rate=fs, n_channels=data.shape[1], dtype=np.int16,
                     chunk_duration=0.025, n_threads=1, check_after_compress=True)
    saved_ap = list(range(n_ap))
    imro, chanmap, shank, electrodes, _ = np1_tables(saved_ap, {}, geom=False)
    meta = common_imec_meta(bin_path, n_ap + 1, fs,
                            "D:/iblrig_data/Subjects/KS001/2024-03-06/001/raw_ephys_data/probe00/"
                            "_spikeglx_ephysData_g0_t0.imec0.ap.bin", 0, "20200309")
    meta.update({
        "acqApLfSy": "384,384,1",
        "imAiRangeMax": "0.6",
        "imAiRangeMin": "-0.6",
        "imDatPrb_pn": "PRB_1_4_0480_1_C",
        "imDatPrb_port": "3",
        "imDatPrb_slot": "2",
        "imDatPrb_sn": "19011110443",
        "imDatPrb_type": "0",
        "imMaxInt": "512",
        "imSampRate": "30000",
        "snsApLfSy": f"{n_ap},0,1",
        "snsSaveChanSubset": "0:7,768",
        "~imroTbl": imro,
        "~snsChanMap": chanmap,
        "~snsShankMap": shank,
    })
    write_meta(folder / f"{stem}.meta", meta)
    return folder, data, {"stem": stem, "electrodes": electrodes}


# ----------------------------------------------------------------------------
# NWB
# ----------------------------------------------------------------------------

NWB_CONVERSION = 0.195e-6
NWB_OFFSET = -1.25e-5
NWB_N = 12


def nwb_positions():
    # a two-column staggered layout with a gap, in um
    rows = np.array([0, 0, 1, 1, 2, 2, 3, 3, 10, 10, 11, 11])
    x = np.where(rows % 2 == 0, 16.0, 0.0) + 32.0 * (np.arange(NWB_N) % 2)
    y = 20.0 * rows
    return np.stack([x, y], axis=1)


def write_nwb(path, chunked):
    import random
    import uuid
    from datetime import datetime, timezone

    import hdmf.container
    from hdmf.backends.hdf5 import H5DataIO

    # hdmf gives every container a random object_id (uuid4); draw them from a
    # seeded generator so that the files come out byte-identical.
    ids = random.Random(SEED)
    hdmf.container.uuid4 = lambda: uuid.UUID(int=ids.getrandbits(128), version=4)
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.ecephys import ElectricalSeries

    when = datetime(2024, 3, 6, 14, 48, 0, tzinfo=timezone.utc)
    nwb = NWBFile(session_description="kilosort-rs reader fixture", identifier="ks-rs-fixture-0001",
                  session_start_time=when, file_create_date=[when])
    dev = nwb.create_device(name="NeuropixelsProbe", description="synthetic 12-contact probe")
    grp = nwb.create_electrode_group(name="shank0", description="the only shank", location="CA1",
                                     device=dev)
    pos = nwb_positions()
    for i in range(NWB_N):
        nwb.add_electrode(x=100.0 + pos[i, 0], y=2000.0 + pos[i, 1], z=0.0, rel_x=pos[i, 0],
                          rel_y=pos[i, 1], rel_z=0.0, location="CA1", group=grp, filtering="none",
                          imp=float("nan"))
    region = nwb.create_electrode_table_region(list(range(NWB_N)), "all electrodes")
    chan_conv = np.ones(NWB_N, dtype=np.float32)
    chan_conv[3] = 1.25
    chan_conv[7] = 0.8
    ap = SIGNAL[:, :NWB_N].copy()
    lf = SIGNAL[::12, :NWB_N].copy()
    if chunked:
        ap_data = H5DataIO(ap, compression="gzip", compression_opts=4, chunks=(512, NWB_N),
                           shuffle=True)
        lf_data = H5DataIO(lf, compression="gzip", chunks=(64, NWB_N), shuffle=True)
    else:
        ap_data, lf_data = ap, lf
    nwb.add_acquisition(ElectricalSeries(
        name="ElectricalSeries", data=ap_data, electrodes=region, rate=30000.0, starting_time=0.5,
        conversion=NWB_CONVERSION, offset=NWB_OFFSET, channel_conversion=chan_conv,
        filtering="300 Hz high-pass", description="AP band"))
    region_lf = nwb.create_electrode_table_region(list(range(NWB_N)), "all electrodes")
    nwb.add_acquisition(ElectricalSeries(
        name="ElectricalSeriesLF", data=lf_data, electrodes=region_lf, rate=2500.0,
        starting_time=0.5, conversion=NWB_CONVERSION, description="LF band"))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)


def make_nwb():
    folder = fresh_dir(OUT / "nwb")
    write_nwb(folder / "nwb_chunked.nwb", chunked=True)
    write_nwb(folder / "nwb_contiguous.nwb", chunked=False)
    return folder, SIGNAL[:, :NWB_N]


# ----------------------------------------------------------------------------
# Reading back with the independent readers
# ----------------------------------------------------------------------------


def versions():
    import h5py
    import hdmf
    import mtscomp
    import neo
    import probeinterface
    import pynwb
    import spikeinterface

    return {
        "numpy": np.__version__, "neo": neo.__version__, "probeinterface": probeinterface.__version__,
        "spikeinterface": spikeinterface.__version__, "mtscomp": mtscomp.__version__,
        "pynwb": pynwb.__version__, "hdmf": hdmf.__version__, "h5py": h5py.__version__,
    }


VERS = None


def neo_stream(reader, name):
    streams = reader.header["signal_streams"]
    idx = [i for i, s in enumerate(streams) if s["name"] == name]
    assert len(idx) == 1, (name, streams)
    i = idx[0]
    sid = streams[i]["id"]
    chans = reader.header["signal_channels"]
    chans = chans[chans["stream_id"] == sid]
    traces = reader.get_analogsignal_chunk(block_index=0, seg_index=0, stream_index=i)
    return {
        "index": i,
        "traces": np.asarray(traces),
        "gain": np.asarray(chans["gain"], dtype=np.float64),
        "offset": np.asarray(chans["offset"], dtype=np.float64),
        "ids": [str(c) for c in chans["id"]],
        "names": [str(c) for c in chans["name"]],
        "units": [str(c) for c in chans["units"]],
        "fs": float(reader.get_signal_sampling_rate(stream_index=i)),
        "t_start": float(reader.get_signal_t_start(block_index=0, seg_index=0, stream_index=i)),
        "all_streams": [str(s) for s in streams["name"]],
    }


def save_common(folder, traces, gain, offset, positions=None, shank_ids=None, extra=None):
    np.save(folder / "expected_traces.npy", np.ascontiguousarray(traces))
    np.save(folder / "expected_gain_uv.npy", np.asarray(gain, dtype=np.float64))
    np.save(folder / "expected_offset_uv.npy", np.asarray(offset, dtype=np.float64))
    if positions is not None:
        np.save(folder / "expected_positions.npy", np.asarray(positions, dtype=np.float64))
    if shank_ids is not None:
        np.save(folder / "expected_shank_ids.npy", np.asarray(shank_ids, dtype=np.int64))
    if extra:
        for name, arr in extra.items():
            np.save(folder / name, arr)


def check_si_recording(rec, traces, gain, offset, positions=None):
    t = rec.get_traces()
    assert np.array_equal(t, traces), "SpikeInterface traces differ from neo"
    assert np.allclose(rec.get_channel_gains(), gain)
    assert np.allclose(rec.get_channel_offsets(), offset)
    if positions is not None:
        assert np.allclose(rec.get_channel_locations(), positions), (rec.get_channel_locations(),
                                                                      positions)


def read_spikeglx_fixture(folder, data, n_ap, meta_name="rec_g0_t0.imec0.ap.meta"):
    import probeinterface as pi
    from neo.rawio import SpikeGLXRawIO
    from spikeinterface.extractors import read_spikeglx

    r = SpikeGLXRawIO(dirname=str(folder))
    r.parse_header()
    s = neo_stream(r, "imec0.ap")
    sync = neo_stream(r, "imec0.ap-SYNC")
    assert np.array_equal(s["traces"], data[:, :n_ap])
    assert np.array_equal(sync["traces"][:, 0], data[:, n_ap])
    probe = pi.read_spikeglx(folder / meta_name)
    pos = probe.contact_positions
    shanks = probe.shank_ids.astype(np.int64) if probe.shank_ids is not None else None
    rec = read_spikeglx(str(folder), stream_id="imec0.ap")
    check_si_recording(rec, s["traces"], s["gain"], s["offset"], pos)
    si_ids = [str(c) for c in rec.get_channel_ids()]
    return s, sync, probe, pos, shanks, si_ids


def answers_spikeglx(folder, data, info, kind):
    from probeinterface.neuropixels_tools import parse_spikeglx_meta, parse_spikeglx_snsGeomMap

    n_ap = len(info["saved_ap"])
    s, sync, probe, pos, shanks, si_ids = read_spikeglx_fixture(folder, data, n_ap)
    extra = {"expected_sync.npy": np.ascontiguousarray(sync["traces"][:, 0])}
    exp = {
        "fixture": folder.name,
        "format": "SpikeGLX",
        "variant": kind,
        "files": ["rec_g0_t0.imec0.ap.bin", "rec_g0_t0.imec0.ap.meta"],
        "stream": "imec0.ap",
        "fs": s["fs"],
        "n_samples": int(s["traces"].shape[0]),
        "n_channels": int(s["traces"].shape[1]),
        "n_saved_chans_in_file": n_ap + 1,
        "sync_channel_in_file": n_ap,
        "saved_acquisition_channels": info["saved_ap"],
        "electrodes": info["electrodes"],
        "channel_ids": s["ids"],
        "channel_names": s["names"],
        "spikeinterface_channel_ids": si_ids,
        "units": s["units"][0],
        "gain_uv": s["gain"].tolist(),
        "offset_uv": s["offset"].tolist(),
        "t_start_s": s["t_start"],
        "sync_stream": "imec0.ap-SYNC",
        "positions_from": "probeinterface.read_spikeglx (catalogue geometry from imroTbl; snsGeomMap ignored)",
        "positions": pos.tolist(),
        "shank_ids": None if shanks is None else shanks.tolist(),
        "probe_part_number": probe.annotations.get("part_number"),
        "reader": f"neo {VERS['neo']} SpikeGLXRawIO; probeinterface {VERS['probeinterface']}; "
                  f"spikeinterface {VERS['spikeinterface']} read_spikeglx",
    }
    meta = parse_spikeglx_meta(folder / "rec_g0_t0.imec0.ap.meta")
    if "snsGeomMap" in meta:
        _, _, _, g_shank, gx, gy, _ = parse_spikeglx_snsGeomMap(meta)
        gpos = np.stack([gx, gy], axis=1)
        extra["expected_geommap_positions.npy"] = gpos
        exp["geommap_positions_from"] = "probeinterface.parse_spikeglx_snsGeomMap (x from the shank's left edge)"
        exp["geommap_positions"] = gpos.tolist()
        exp["geommap_shank_ids"] = g_shank.tolist()
        assert np.allclose(gpos, np.asarray(info["geom_positions"], dtype=float))
        exp["geommap_minus_probeinterface_um"] = (gpos - pos).mean(axis=0).tolist()
    save_common(folder, s["traces"], s["gain"], s["offset"], pos, shanks, extra)
    save_json(folder / "expected.json", exp)


def answers_openephys(folder, ap, info):
    import probeinterface as pi
    from neo.rawio import OpenEphysBinaryRawIO
    from spikeinterface.extractors import read_openephys

    r = OpenEphysBinaryRawIO(dirname=str(folder))
    r.parse_header()
    name = "Record Node 101#Neuropix-PXI-100.ProbeA-AP"
    s = neo_stream(r, name)
    lf = neo_stream(r, "Record Node 101#Neuropix-PXI-100.ProbeA-LFP")
    assert np.array_equal(s["traces"], ap)
    assert np.array_equal(lf["traces"], info["lf"])
    settings = folder / "Record Node 101" / "settings.xml"
    probe = pi.read_openephys_neuropixels(settings, stream_name="Neuropix-PXI-100.ProbeA-AP")
    pos = probe.contact_positions
    rec = read_openephys(str(folder), stream_name=name)
    check_si_recording(rec, s["traces"], s["gain"], s["offset"], pos)
    sn = np.load(folder / "Record Node 101/experiment1/recording1/continuous/"
                 "Neuropix-PXI-100.ProbeA-AP/sample_numbers.npy")
    exp = {
        "fixture": folder.name,
        "format": "Open Ephys binary (GUI 0.6.7, Neuropix-PXI 0.6.6)",
        "stream": name,
        "oebin_folder": "Neuropix-PXI-100.ProbeA-AP",
        "other_streams": [n for n in s["all_streams"] if n != name],
        "fs": s["fs"],
        "n_samples": int(s["traces"].shape[0]),
        "n_channels": int(s["traces"].shape[1]),
        "channel_ids": s["ids"],
        "channel_names": s["names"],
        "spikeinterface_channel_ids": [str(c) for c in rec.get_channel_ids()],
        "units": s["units"][0],
        "gain_uv": s["gain"].tolist(),
        "offset_uv": s["offset"].tolist(),
        "first_sample_number": int(sn[0]),
        "t_start_s": s["t_start"],
        "saved_probe_channels": OE_SAVED,
        "electrodes": info["electrodes"],
        "positions_from": "probeinterface.read_openephys_neuropixels (catalogue geometry; electrodes "
                          "found from ELECTRODE_XPOS/YPOS, then sliced by the Record Node recording_state)",
        "positions": pos.tolist(),
        "settings_xml_positions_um": [[float((11 if (e // 2) % 2 else 27) + 32 * (e % 2)),
                                       float(20 * (e // 2))] for e in info["electrodes"]],
        "lfp": {"fs": lf["fs"], "n_samples": int(lf["traces"].shape[0]), "t_start_s": lf["t_start"]},
        "reader": f"neo {VERS['neo']} OpenEphysBinaryRawIO; probeinterface {VERS['probeinterface']} "
                  f"read_openephys_neuropixels; spikeinterface {VERS['spikeinterface']} read_openephys",
    }
    save_common(folder, s["traces"], s["gain"], s["offset"], pos)
    save_json(folder / "expected.json", exp)


def answers_intan(folder, path, amp, info, layout):
    from neo.rawio import IntanRawIO
    from spikeinterface.extractors import read_intan

    r = IntanRawIO(filename=str(path))
    r.parse_header()
    s = neo_stream(r, "RHD2000 amplifier channel")
    ts = np.asarray(r.get_intan_timestamps())
    rec = read_intan(str(path), stream_name="RHD2000 amplifier channel")
    check_si_recording(rec, s["traces"], s["gain"], s["offset"])
    exp = {
        "fixture": folder.name,
        "format": f"Intan RHD, {layout}",
        "file": path.name,
        "stream": "RHD2000 amplifier channel",
        "all_streams": s["all_streams"],
        "fs": s["fs"],
        "n_samples": int(s["traces"].shape[0]),
        "n_channels": int(s["traces"].shape[1]),
        "channel_ids": s["ids"],
        "channel_names": s["names"],
        "spikeinterface_channel_ids": [str(c) for c in rec.get_channel_ids()],
        "units": s["units"][0],
        "neo_raw_dtype": str(s["traces"].dtype),
        "gain_uv": s["gain"].tolist(),
        "offset_uv": s["offset"].tolist(),
        "first_timestamp": int(ts[0]),
        "intan_version": f"{r._global_info['major_version']}.{r._global_info['minor_version']}",
        "reader": f"neo {VERS['neo']} IntanRawIO; spikeinterface {VERS['spikeinterface']} read_intan",
    }
    extra = {"expected_timestamps.npy": ts.astype(np.int32)}
    if s["traces"].dtype == np.uint16:
        # neo gives the file's offset-binary words; the int16 the sorter uses is word - 32768.
        assert np.array_equal(s["traces"], info["amp_u16"])
        as_i16 = (s["traces"].astype(np.int32) - 32768).astype(np.int16)
        assert np.array_equal(as_i16, amp)
        extra["expected_traces_neo_uint16.npy"] = s["traces"]
        traces = as_i16
        exp["expected_traces_note"] = ("expected_traces.npy = neo's uint16 words - 32768 (int16); "
                                       "neo's own output is expected_traces_neo_uint16.npy")
        exp["header_bytes"] = info["header_bytes"]
        exp["samples_per_block"] = info["n_block"]
    else:
        assert np.array_equal(s["traces"], amp)
        traces = s["traces"]
    save_common(folder, traces, s["gain"], s["offset"], extra=extra)
    save_json(folder / "expected.json", exp)


def answers_mtscomp(folder, data, info):
    import mtscomp
    from spikeinterface.extractors import read_cbin_ibl

    stem = info["stem"]
    rd = mtscomp.Reader()
    rd.open(folder / f"{stem}.cbin", folder / f"{stem}.ch")
    dec = np.asarray(rd[:])
    cmeta = json.loads((folder / f"{stem}.ch").read_text())
    rd.close()
    assert np.array_equal(dec, data)
    rec = read_cbin_ibl(str(folder))
    t = rec.get_traces()
    assert np.array_equal(t, data[:, :-1])
    rec_sync = read_cbin_ibl(str(folder), load_sync_channel=True)
    assert np.array_equal(rec_sync.get_traces(), data)
    pos = rec.get_channel_locations()
    exp = {
        "fixture": folder.name,
        "format": "IBL mtscomp (.cbin + .ch) with a SpikeGLX .meta",
        "files": [f"{stem}.cbin", f"{stem}.ch", f"{stem}.meta", f"{stem}.bin"],
        "fs": float(rec.get_sampling_frequency()),
        "n_samples": int(dec.shape[0]),
        "n_channels_in_file": int(dec.shape[1]),
        "n_channels": int(t.shape[1]),
        "channel_ids": [str(c) for c in rec.get_channel_ids()],
        "gain_uv": rec.get_channel_gains().tolist(),
        "offset_uv": rec.get_channel_offsets().tolist(),
        "chunk_bounds": cmeta["chunk_bounds"],
        "chunk_offsets": cmeta["chunk_offsets"],
        "chunk_order": cmeta["chunk_order"],
        "do_time_diff": cmeta["do_time_diff"],
        "do_spatial_diff": cmeta["do_spatial_diff"],
        "positions": pos.tolist(),
        "wraparound_artefact": "channel 5, samples 3000-3005: 32767 x4 then -32768 x2",
        "reader": f"mtscomp {VERS['mtscomp']} Reader; spikeinterface {VERS['spikeinterface']} "
                  f"read_cbin_ibl (probe by probeinterface {VERS['probeinterface']})",
    }
    save_common(folder, t, rec.get_channel_gains(), rec.get_channel_offsets(), pos,
                extra={"expected_traces_with_sync.npy": dec})
    save_json(folder / "expected.json", exp)


def answers_nwb(folder, ap):
    import h5py
    from spikeinterface.extractors import read_nwb_recording

    out = {"fixture": folder.name, "format": "NWB 2 (HDF5), written by pynwb", "files": {}}
    for fname in ("nwb_chunked.nwb", "nwb_contiguous.nwb"):
        p = folder / fname
        rec = read_nwb_recording(str(p), electrical_series_path="acquisition/ElectricalSeries", use_pynwb=True)
        rec_h5 = read_nwb_recording(str(p), electrical_series_path="acquisition/ElectricalSeries")
        t = rec.get_traces()
        assert np.array_equal(t, ap)
        assert np.array_equal(rec_h5.get_traces(), ap)
        assert np.allclose(rec_h5.get_channel_gains(), rec.get_channel_gains())
        assert np.allclose(rec_h5.get_channel_locations(), rec.get_channel_locations())
        lf = read_nwb_recording(str(p), electrical_series_path="acquisition/ElectricalSeriesLF")
        with h5py.File(p, "r") as f:
            d = f["acquisition/ElectricalSeries/data"]
            layout = {"chunks": list(d.chunks) if d.chunks else None, "compression": d.compression,
                      "shuffle": bool(d.shuffle), "dtype": str(d.dtype), "shape": list(d.shape)}
            attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in d.attrs.items()
                     if k in ("conversion", "offset", "resolution", "unit")}
            chan_conv = f["acquisition/ElectricalSeries/channel_conversion"][:].tolist()
            start = f["acquisition/ElectricalSeries/starting_time"]
            start_attrs = {"starting_time": float(start[()]), "rate": float(start.attrs["rate"])}
            e = f["general/extracellular_ephys/electrodes"]
            h5_pos = np.stack([e["rel_x"][:], e["rel_y"][:]], axis=1)
        assert np.allclose(h5_pos, rec.get_channel_locations())
        out["files"][fname] = {
            "electrical_series_path": "acquisition/ElectricalSeries",
            "other_series": ["acquisition/ElectricalSeriesLF"],
            "fs": float(rec.get_sampling_frequency()),
            "t_start_s": start_attrs["starting_time"],
            "n_samples": int(t.shape[0]),
            "n_channels": int(t.shape[1]),
            "channel_ids": [str(c) for c in rec.get_channel_ids()],
            "gain_uv": rec.get_channel_gains().tolist(),
            "offset_uv": rec.get_channel_offsets().tolist(),
            "data_attrs": attrs,
            "channel_conversion": chan_conv,
            "data_layout": layout,
            "lf": {"fs": float(lf.get_sampling_frequency()), "n_samples": int(lf.get_num_samples())},
            "positions": rec.get_channel_locations().tolist(),
        }
        gain, offset, pos = rec.get_channel_gains(), rec.get_channel_offsets(), rec.get_channel_locations()
    out["gain_formula"] = "gain_uv = conversion * channel_conversion[c] * 1e6; offset_uv = offset * 1e6"
    out["positions_from"] = "electrodes table rel_x, rel_y (SpikeInterface read_nwb_recording)"
    out["reader"] = (f"spikeinterface {VERS['spikeinterface']} read_nwb_recording (pynwb {VERS['pynwb']} and "
                     f"h5py {VERS['h5py']} back ends agree)")
    save_common(folder, ap, gain, offset, pos)
    save_json(folder / "expected.json", out)


def main():
    global VERS
    VERS = versions()
    print("versions:", VERS)

    folder, data, info = make_spikeglx_geommap()
    answers_spikeglx(folder, data, info, "NP1.0 (NP1000), SpikeGLX 20230815 style with ~snsGeomMap")
    folder, data, info = make_spikeglx_imro_np1()
    answers_spikeglx(folder, data, info, "NP1.0 3B (PRB_1_4_0480_1), SpikeGLX 20190413 style, "
                                         "~imroTbl + ~snsShankMap, no imMaxInt")
    folder, data, info = make_spikeglx_imro_np2_4shank()
    answers_spikeglx(folder, data, info, "NP2.0 4-shank (type 24, NP2010), SpikeGLX 20220101 style, "
                                         "~imroTbl + ~snsShankMap, no imChan0apGain")

    folder, ap, info = make_openephys()
    answers_openephys(folder, ap, info)

    folder, path, amp, info = make_intan_traditional((1, 5), "intan_rhd_traditional", 30000.0, 0, False)
    answers_intan(folder, path, amp, info, "traditional (header + 60-sample data blocks, v1.5)")
    folder, path, amp, info = make_intan_traditional((3, 2), "intan_rhd_traditional_v3", 20000.0,
                                                     384000, False)
    answers_intan(folder, path, amp, info, "traditional (header + 128-sample data blocks, v3.2)")
    folder, amp, info = make_intan_one_file_per_signal()
    answers_intan(folder, folder / "info.rhd", amp, info, "one file per signal type (v3.2)")

    folder, data, info = make_mtscomp()
    answers_mtscomp(folder, data, info)

    folder, ap = make_nwb()
    answers_nwb(folder, ap)

    save_json(OUT / "versions.json", VERS)
    total = 0
    for p in sorted(OUT.rglob("*")):
        if p.is_file():
            total += p.stat().st_size
    print(f"total size of tests/data/formats: {total / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
