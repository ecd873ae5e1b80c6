/* scalapack.h - the BLACS and ScaLAPACK routines hamnet calls (private to src/diag).
 *
 * ScaLAPACK ships no C header (Debian's libscalapack-openmpi has BLACS inside the library), so
 * the prototypes are declared here. The p?-routines are Fortran: every argument is passed by
 * reference, and each CHARACTER argument has a hidden length argument at the end of the list
 * (size_t with gfortran >= 8). We pass those lengths explicitly instead of relying on the
 * callee not reading them. Matrices are column-major with 1-based global indices (ia, ja) and
 * a descriptor of DLEN_ = 9 integers (descinit_). */
#ifndef HAMNET_DIAG_SCALAPACK_H
#define HAMNET_DIAG_SCALAPACK_H

#include <mpi.h>
#include <stddef.h>

#define HN_DLEN 9

/* --- BLACS (C interface) --- */
void Cblacs_pinfo(int *mypnum, int *nprocs);
void Cblacs_get(int ictxt, int what, int *val);
void Cblacs_gridinit(int *ictxt, const char *order, int nprow, int npcol);
void Cblacs_gridinfo(int ictxt, int *nprow, int *npcol, int *myrow, int *mycol);
void Cblacs_gridexit(int ictxt);
/* A BLACS system context for an MPI communicator (collective over comm only when a grid is
 * made from it); freed with Cfree_blacs_system_handle. */
int Csys2blacs_handle(MPI_Comm comm);
void Cfree_blacs_system_handle(int handle);

/* --- tools --- */
int numroc_(const int *n, const int *nb, const int *iproc, const int *isrcproc, const int *nprocs);
void descinit_(int *desc, const int *m, const int *n, const int *mb, const int *nb, const int *irsrc,
               const int *icsrc, const int *ictxt, const int *lld, int *info);

/* --- drivers --- */
/* Singular values (jobu = jobvt = 'N': U and VT not referenced). */
void pdgesvd_(const char *jobu, const char *jobvt, const int *m, const int *n, double *a, const int *ia,
              const int *ja, const int *desca, double *s, double *u, const int *iu, const int *ju,
              const int *descu, double *vt, const int *ivt, const int *jvt, const int *descvt, double *work,
              const int *lwork, int *info, size_t len_jobu, size_t len_jobvt);
/* Symmetric eigenproblem by divide and conquer; jobz must be 'V' (eigenvectors into z). */
void pdsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *ia, const int *ja,
              const int *desca, double *w, double *z, const int *iz, const int *jz, const int *descz,
              double *work, const int *lwork, int *iwork, const int *liwork, int *info, size_t len_jobz,
              size_t len_uplo);
/* Reduction to upper Hessenberg form (Householder vectors left below the subdiagonal). */
void pdgehrd_(const int *n, const int *ilo, const int *ihi, double *a, const int *ia, const int *ja,
              const int *desca, double *tau, double *work, const int *lwork, int *info);
/* Eigenvalues of an upper Hessenberg matrix; square blocks of size >= 6 (PDLAQR1 restriction). */
void pdhseqr_(const char *job, const char *compz, const int *n, const int *ilo, const int *ihi, double *h,
              const int *desch, double *wr, double *wi, double *z, const int *descz, double *work,
              const int *lwork, int *iwork, const int *liwork, int *info, size_t len_job, size_t len_compz);

#endif
