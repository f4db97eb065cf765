using Sandbox.Hypervisors.HostDetection;

namespace Sandbox.Runtime.Configuration;

/// <summary>Where sandbox-jailer is: the configured path, else next to the running shim (make install puts both in one
/// directory), else on PATH. When none exists the path next to the shim is returned, and starting a VM then fails
/// with a message that names it.</summary>
public static class JailerLocation
{
    public const string FileName = "sandbox-jailer";

    public static string Resolve(string? configured)
    {
        if (configured is not null)
            return configured;
        string besideShim = Path.Combine(AppContext.BaseDirectory, FileName);
        if (File.Exists(besideShim))
            return besideShim;
        return ExecutableSearch.Find(FileName) ?? besideShim;
    }
}
