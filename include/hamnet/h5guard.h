/* hamnet/h5guard.h - checks of an HDF5 file's raw bytes before HDF5 itself parses them.
 *
 * HDF5 1.10 (Debian 12 ships 1.10.8) trusts some structures it reads that carry no checksum,
 * even in the 1.8 file format. The one hamnet's files depend on is the global heap, where HDF5
 * keeps every variable-length string (the attributes format, arch, ..., and the config text of
 * a checkpoint): a corrupted object size in a global heap collection makes HDF5 copy gigabytes
 * out of a 4 KiB buffer (a crash; fuzz_ckpt found it in seconds), and a free-space entry of size
 * 0 makes it loop forever. hn_h5_check_heaps finds every global heap collection in the file (the
 * signature "GCOL", version 1 and three zero bytes - 8 fixed bytes, which random data matches
 * with probability 2^-64 per position) and walks its objects exactly as HDF5 will, refusing the
 * file if an object does not fit in its collection.
 *
 * Residual risk, documented: a corrupted object *index* inside a collection can still make
 * HDF5 1.10 dereference a missing object (newer HDF5 checks this); such files are refused by
 * the checksums of everything else in most, not all, cases.
 *
 * Used where hamnet reads variable-length strings: every checkpoint open (checkpoint.c) and
 * hn_file_format (`hamnet inspect`). Data set reading never reads strings, so the training path
 * does not scan data files. */
#ifndef HAMNET_H5GUARD_H
#define HAMNET_H5GUARD_H

/* HN_OK, HN_EFORMAT ("PATH: corrupted HDF5 global heap at byte N: ...") or HN_EIO (cannot
 * read). Reads the whole file once; a file that passed (same device, inode, size and mtime) is
 * not read again by this process. Files whose lengths are not 8 bytes, or without a superblock
 * at byte 0, are passed to HDF5 unchecked. */
int hn_h5_check_heaps(const char *path);

/* Testing: forget which files passed (a file rewritten in place within the file system's
 * timestamp resolution, with the same size, would otherwise not be checked again). */
void hn_h5_guard_forget(void);

#endif
