// One-off probe (issue 19 item 1): single-threaded SGEMM/DGEMM rate of OpenBLAS against BLIS on
// every GEMM shape of the default digits model, both libraries loaded with dlopen (RTLD_LOCAL) so
// their cblas_ symbols do not clash. Build and run (Debian: apt-get install libblis-dev):
//   gcc -O2 -o /tmp/gemm_libraries gemm_libraries.c -ldl && /tmp/gemm_libraries
// Not part of the package build; results are in PERFORMANCE.md.
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
typedef void (*sgemm_t)(int,int,int,int,int,int,float,const float*,int,const float*,int,float,float*,int);
typedef void (*dgemm_t)(int,int,int,int,int,int,double,const double*,int,const double*,int,double,double*,int);
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+1e-9*t.tv_nsec;}
enum{RowMajor=101,NoTrans=111,Trans=112};
double bench(sgemm_t f, dgemm_t g, int dbl, int ta, int tb, int M,int N,int K){
  size_t sz=(size_t)4096*4096; float*A=malloc(sz*8),*B=malloc(sz*8),*C=malloc(sz*8);
  for(size_t i=0;i<sz*2;i++){A[i]=(float)rand()/RAND_MAX;B[i]=A[i];C[i]=0;}
  int lda= ta==NoTrans?K:M, ldb= tb==NoTrans?N:K;
  double best=1e9;
  for(int rep=0;rep<7;rep++){ int n=0; double t=now();
    while(now()-t<0.05){ if(dbl) g(RowMajor,ta,tb,M,N,K,1,(double*)A,lda,(double*)B,ldb,0,(double*)C,N); else f(RowMajor,ta,tb,M,N,K,1,A,lda,B,ldb,0,C,N); n++;}
    double dt=(now()-t)/n; if(dt<best)best=dt;}
  free(A);free(B);free(C);
  return 2.0*M*N*K/best/1e9;
}
int main(){
  void*ob=dlopen("libopenblas.so.0",RTLD_NOW|RTLD_LOCAL); void*bl=dlopen("libblis.so.4",RTLD_NOW|RTLD_LOCAL);
  void (*set)(int)=dlsym(ob,"openblas_set_num_threads"); set(1);
  void (*bset)(long)=dlsym(bl,"bli_thread_set_num_threads"); bset(1);
  sgemm_t os=dlsym(ob,"cblas_sgemm"), bs=dlsym(bl,"cblas_sgemm"); dgemm_t od=dlsym(ob,"cblas_dgemm"), bd=dlsym(bl,"cblas_dgemm");
  // Z = X W^T: M=B, N=out, K=in, NT ; dX = G W: M=B, N=in, K=out NN ; dW = G^T X: M=out, N=in, K=B TN
  int shapes[][3]={{32,32,256},{32,256,256},{32,256,64},{32,64,64},{128,32,256},{128,256,64},{128,64,64},{1024,32,256},{1024,256,64},{1024,64,64},{512,512,512}};
  const char* nm[]={"NT Z=XW^T","NN dX=GW","TN dW=G^TX"};
  for(int d=0;d<2;d++) for(unsigned s=0;s<sizeof shapes/sizeof shapes[0];s++){
    int Bt=shapes[s][0], in=shapes[s][1], out=shapes[s][2];
    for(int k=0;k<3;k++){
      int ta,tb,M,N,K;
      if(k==0){ta=NoTrans;tb=Trans;M=Bt;N=out;K=in;}
      else if(k==1){ta=NoTrans;tb=NoTrans;M=Bt;N=in;K=out;}
      else {ta=Trans;tb=NoTrans;M=out;N=in;K=Bt;}
      double o=bench(os,od,d,ta,tb,M,N,K), b=bench(bs,bd,d,ta,tb,M,N,K);
      printf("%s B=%4d %3d->%3d %-11s openblas %6.1f blis %6.1f GFLOP/s  blis/openblas %.2f\n", d?"double":"float ",Bt,in,out,nm[k],o,b,b/o);
    }
  }
}
