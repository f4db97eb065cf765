// One private containerd and its pods serve every class; VMs must not compete for the 2 cores.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
