"""Read side: the file format, mapping and validation, the index and the
dataset (generations, records, labels), signature checks."""
