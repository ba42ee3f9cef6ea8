// One-off probe (issue 19 item 1): OpenBLAS against libxsmm (Debian libxsmm-dev 1.17, static)
// on small shapes of the default digits model: libxsmm_sgemm (its BLAS-compatible entry) and
// a JIT kernel from libxsmm_smmdispatch (NN only). Build and run:
//   gcc -O2 -o /tmp/gemm_libxsmm gemm_libxsmm.c /usr/lib/libxsmm.a -lopenblas -lpthread -lrt -ldl -lm && /tmp/gemm_libxsmm
// Not part of the package build; results are in PERFORMANCE.md.
#include <libxsmm.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <cblas.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+1e-9*t.tv_nsec;}
// row-major C[M,N] = op(A) op(B): as column-major C^T[N,M] = op(B)^T op(A)^T
double bx(int which,int ta,int tb,int M,int N,int K){
  float*A=malloc(4<<22),*B=malloc(4<<22),*C=malloc(4<<22); for(int i=0;i<(1<<22);i++){A[i]=B[i]=rand()/(float)RAND_MAX;C[i]=0;}
  int lda= ta?M:K, ldb= tb?K:N; float one=1,zero=0; double best=1e9;
  char cta = tb?'T':'N', ctb = ta?'T':'N'; libxsmm_blasint m=N,n=M,k=K,la=ldb,lb=lda,lc=N;
  for(int r=0;r<7;r++){int it=0;double t=now(); while(now()-t<0.05){
    if(which) libxsmm_sgemm(&cta,&ctb,&m,&n,&k,&one,B,&la,A,&lb,&zero,C,&lc);
    else cblas_sgemm(CblasRowMajor,ta?CblasTrans:CblasNoTrans,tb?CblasTrans:CblasNoTrans,M,N,K,1,A,lda,B,ldb,0,C,N); it++;}
    double dt=(now()-t)/it; if(dt<best)best=dt;}
  free(A);free(B);free(C); return 2.0*M*N*K/best/1e9;}
int main(){ libxsmm_init(); openblas_set_num_threads(1);
  int shapes[][3]={{32,32,256},{32,256,256},{32,256,64},{32,64,64},{128,64,64},{128,32,256},{64,784,784}};
  for(unsigned s=0;s<sizeof shapes/sizeof*shapes;s++){int Bt=shapes[s][0],in=shapes[s][1],out=shapes[s][2];
    for(int k=0;k<3;k++){int ta,tb,M,N,K; if(k==0){ta=0;tb=1;M=Bt;N=out;K=in;} else if(k==1){ta=0;tb=0;M=Bt;N=in;K=out;} else {ta=1;tb=0;M=out;N=in;K=Bt;}
      double o=bx(0,ta,tb,M,N,K), x=bx(1,ta,tb,M,N,K);
      printf("B=%4d %3d->%3d k%d openblas %6.1f libxsmm %6.1f ratio %.2f\n",Bt,in,out,k,o,x,x/o);}}
}
