// Package procstat reads this process's own figures from /proc (resident memory), for
// tests and benchmarks that bound what a flood or a scale test costs.
package procstat
