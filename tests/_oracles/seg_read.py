"""Reads a DICOM SEG with pydicom and prints what the writer tests check, as JSON: identity, segments,
references, and every frame's pixels mapped to LPS millimetres through that frame's PlanePosition and
the shared orientation/spacing (giving per-segment centroids and voxel counts).
Usage: seg_read.py SEG_FILE"""
import hashlib, json, sys
import numpy as np, pydicom

ds = pydicom.dcmread(sys.argv[1])
sh = ds.SharedFunctionalGroupsSequence[0]
iop = np.array(sh.PlaneOrientationSequence[0].ImageOrientationPatient, float)
ps = np.array(sh.PixelMeasuresSequence[0].PixelSpacing, float)
arr = ds.pixel_array.reshape(int(ds.NumberOfFrames), int(ds.Rows), int(ds.Columns))
sums, counts, frames = {}, {}, []
for f, fg in enumerate(ds.PerFrameFunctionalGroupsSequence):
    seg = int(fg.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
    ipp = np.array(fg.PlanePositionSequence[0].ImagePositionPatient, float)
    src = fg.DerivationImageSequence[0].SourceImageSequence[0]
    r, c = np.nonzero(arr[f])
    world = ipp[None, :] + c[:, None] * ps[1] * iop[None, :3] + r[:, None] * ps[0] * iop[None, 3:]
    sums[seg] = sums.get(seg, np.zeros(3)) + world.sum(0)
    counts[seg] = counts.get(seg, 0) + len(r)
    frames.append({'seg': seg, 'ref': str(src.ReferencedSOPInstanceUID), 'refClass': str(src.ReferencedSOPClassUID),
                   'purpose': str(src.PurposeOfReferenceCodeSequence[0].CodeValue), 'ipp': ipp.tolist(),
                   'dim': [int(x) for x in fg.FrameContentSequence[0].DimensionIndexValues],
                   'pixels': (r * int(ds.Columns) + c).tolist()})

def code(c):
    return [str(c.CodeValue), str(c.CodingSchemeDesignator), str(c.CodeMeaning)]

print(json.dumps({
    'transferSyntax': str(ds.file_meta.TransferSyntaxUID), 'sopClassUID': str(ds.SOPClassUID),
    'sopInstanceUID': str(ds.SOPInstanceUID), 'metaSopInstanceUID': str(ds.file_meta.MediaStorageSOPInstanceUID),
    'studyInstanceUID': str(ds.StudyInstanceUID), 'seriesInstanceUID': str(ds.SeriesInstanceUID),
    'frameOfReferenceUID': str(ds.FrameOfReferenceUID), 'segmentationType': str(ds.SegmentationType),
    'bitsAllocated': int(ds.BitsAllocated), 'rows': int(ds.Rows), 'columns': int(ds.Columns),
    'numberOfFrames': int(ds.NumberOfFrames), 'pixelDataBytes': len(ds.PixelData),
    'pixelSha': hashlib.sha256(ds.PixelData).hexdigest(),
    'patient': {k: str(ds.data_element(k).value) for k in ['PatientName', 'PatientID', 'PatientBirthDate', 'PatientSex',
                'StudyDate', 'StudyTime', 'StudyID', 'AccessionNumber', 'ReferringPhysicianName']},
    'iop': iop.tolist(), 'pixelSpacing': ps.tolist(),
    'segments': [{'number': int(s.SegmentNumber), 'label': str(s.SegmentLabel), 'category': code(s.SegmentedPropertyCategoryCodeSequence[0]),
                  'type': code(s.SegmentedPropertyTypeCodeSequence[0]), 'algorithmType': str(s.SegmentAlgorithmType),
                  'algorithmName': str(s.SegmentAlgorithmName),
                  'lab': [int(x) for x in s.RecommendedDisplayCIELabValue] if 'RecommendedDisplayCIELabValue' in s else None}
                 for s in ds.SegmentSequence],
    'referencedSeries': [[str(s.SeriesInstanceUID), [str(i.ReferencedSOPInstanceUID) for i in s.ReferencedInstanceSequence]]
                         for s in ds.ReferencedSeriesSequence],
    'dimensions': [[f'{int(d.DimensionIndexPointer):08X}', f'{int(d.FunctionalGroupPointer):08X}'] for d in ds.DimensionIndexSequence],
    'frames': frames,
    'centroids': {str(k): (v / max(counts[k], 1)).tolist() for k, v in sums.items()},
    'counts': {str(k): v for k, v in counts.items()},
}, ensure_ascii=False))
