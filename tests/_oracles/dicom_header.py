"""pydicom's view of DICOM headers, per object and per frame, as JSON (oracle for tests/io/dicom/parse.test.ts).

Usage: dicom_header.py FILE...   (a .gz file is gunzipped first). Prints {path: {...}} on stdout.
Per frame: enhanced multi-frame objects read Per-Frame then Shared Functional Groups; others use top-level tags.
"""
import gzip
import io
import json
import sys
import warnings

import pydicom

warnings.simplefilter('ignore')


def floats(v):
    if v is None:
        return None
    if isinstance(v, (list, tuple, pydicom.multival.MultiValue)):
        return [float(x) for x in v]
    return [float(v)]


def group_attr(groups, seq, attr):
    for g in groups:
        if g is not None and seq in g and len(g[seq].value) > 0 and attr in g[seq][0]:
            return g[seq][0][attr].value
    return None


def first(v):
    return None if v is None else floats(v)[0]


def describe(ds):
    n = int(ds.get('NumberOfFrames', 1) or 1)
    shared = ds.SharedFunctionalGroupsSequence[0] if 'SharedFunctionalGroupsSequence' in ds else None
    per = ds.PerFrameFunctionalGroupsSequence if 'PerFrameFunctionalGroupsSequence' in ds else None
    frames = []
    for i in range(n):
        if shared is None and per is None:
            get = lambda seq, attr: ds[attr].value if attr in ds else None  # noqa: E731
        else:
            groups = [per[i] if per is not None and i < len(per) else None, shared]
            get = lambda seq, attr, groups=groups: group_attr(groups, seq, attr)  # noqa: E731
        pos = get('PlanePositionSequence', 'ImagePositionPatient')
        ori = get('PlaneOrientationSequence', 'ImageOrientationPatient')
        sp = get('PixelMeasuresSequence', 'PixelSpacing')
        slope = get('PixelValueTransformationSequence', 'RescaleSlope')
        inter = get('PixelValueTransformationSequence', 'RescaleIntercept')
        wc = get('FrameVOILUTSequence', 'WindowCenter')
        ww = get('FrameVOILUTSequence', 'WindowWidth')
        frame = {
            'position': floats(pos),
            'orientation': floats(ori),
            'pixelSpacing': floats(sp),
            'slope': first(slope) if slope is not None else 1.0,
            'intercept': first(inter) if inter is not None else 0.0,
            'window': [first(wc), first(ww)] if wc is not None and ww is not None else None,
        }
        if per is not None and i < len(per) and 'FrameContentSequence' in per[i]:
            fc = per[i].FrameContentSequence[0]
            if 'DimensionIndexValues' in fc:
                frame['dimensionIndex'] = [int(x) for x in (fc.DimensionIndexValues if isinstance(fc.DimensionIndexValues, (list, pydicom.multival.MultiValue)) else [fc.DimensionIndexValues])]
            if 'TemporalPositionIndex' in fc:
                frame['temporalPositionIndex'] = int(fc.TemporalPositionIndex)
        frames.append(frame)

    def s(kw):
        v = ds.get(kw)
        return None if v is None or v == '' else str(v).strip()

    def i(kw):
        v = ds.get(kw)
        return None if v is None or v == '' else int(v)

    return {
        'transferSyntaxUID': str(ds.file_meta.TransferSyntaxUID),
        'sopClassUID': s('SOPClassUID'),
        'sopInstanceUID': s('SOPInstanceUID'),
        'studyInstanceUID': s('StudyInstanceUID'),
        'seriesInstanceUID': s('SeriesInstanceUID'),
        'frameOfReferenceUID': s('FrameOfReferenceUID'),
        'modality': s('Modality'),
        'instanceNumber': i('InstanceNumber'),
        'seriesNumber': i('SeriesNumber'),
        'acquisitionNumber': i('AcquisitionNumber'),
        'echoNumber': i('EchoNumbers'),
        'gantryTilt': first(ds.get('GantryDetectorTilt')) if ds.get('GantryDetectorTilt') not in (None, '') else None,
        'rows': int(ds.Rows),
        'columns': int(ds.Columns),
        'numberOfFrames': n,
        'samplesPerPixel': int(ds.get('SamplesPerPixel', 1)),
        'photometric': str(ds.PhotometricInterpretation).strip(),
        'bitsAllocated': int(ds.BitsAllocated),
        'bitsStored': int(ds.BitsStored),
        'pixelRepresentation': int(ds.PixelRepresentation),
        'frames': frames,
    }


out = {}
for path in sys.argv[1:]:
    raw = gzip.open(path).read() if path.endswith('.gz') else open(path, 'rb').read()
    out[path] = describe(pydicom.dcmread(io.BytesIO(raw)))
print(json.dumps(out))
