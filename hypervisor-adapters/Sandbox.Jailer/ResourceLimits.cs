using Sandbox.Hypervisors.Jail;
using Sandbox.Native;

namespace Sandbox.Jailer;

/// <summary>Sets each rlimit's soft and hard value to the given one, or leaves a lower hard limit as it is: a jail only
/// ever lowers limits.</summary>
internal static unsafe class ResourceLimits
{
    public static void Apply(IReadOnlyDictionary<string, ulong> limits)
    {
        foreach (var (name, wanted) in limits)
        {
            var current = new LibCSupplement.ResourceLimit();
            if (LibCSupplement.getrlimit(JailOptions.LimitResources[name], &current) != 0)
                throw new JailException($"cannot read rlimit {name}: {Errno.DescribeLast()}");
            ulong value = Math.Min(wanted, current.rlim_max);
            var limit = new LibCSupplement.ResourceLimit { rlim_cur = value, rlim_max = value };
            if (LibCSupplement.setrlimit(JailOptions.LimitResources[name], &limit) != 0)
                throw new JailException($"cannot set rlimit {name} to {value}: {Errno.DescribeLast()}");
        }
    }
}
