namespace Sandbox.Agent.Containers;

/// <summary>Writes sysctls of the VM itself (/proc/sys), for the net.* sysctls of pod specs: the VM is the pod's network namespace.</summary>
public static class GuestSysctls
{
    /// <summary>
    /// The /proc/sys path of a sysctl name. As in sysctl(8), a name with '/' uses '/' as the separator (so a '.' can be
    /// part of a component, like an interface name eth0.100); otherwise '.' is the separator. Only letters, digits,
    /// '_', '-', '.', '/' are accepted, and no component may be empty, '.' or '..'.
    /// </summary>
    public static bool TryGetPath(string name, out string path)
    {
        path = "";
        if (name.Length == 0 || name.Length > 256 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.' or '/')) return false;
        string[] parts = name.Contains('/') ? name.Split('/') : name.Split('.');
        if (parts.Any(p => p.Length == 0 || p is "." or "..")) return false;
        path = "/proc/sys/" + string.Join('/', parts);
        return true;
    }

    /// <summary>Writes each value; the error names the sysctl and what asked for it.</summary>
    public static async Task ApplyAsync(IReadOnlyList<KeyValuePair<string, string>> sysctls, string what, CancellationToken cancellationToken)
    {
        foreach (var (name, value) in sysctls)
        {
            if (!TryGetPath(name, out string path)) throw AgentErrors.InvalidArgument($"{what}: '{name}' is not a valid sysctl name");
            if (!File.Exists(path))
                throw AgentErrors.InvalidArgument($"{what}: sysctl {name} does not exist in the guest kernel ({path} is missing)");
            try
            {
                await File.WriteAllTextAsync(path, value, cancellationToken);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw AgentErrors.InvalidArgument($"{what}: setting sysctl {name}={value} in the VM failed: {e.Message}");
            }
        }
    }
}
