namespace Sandbox.Shim.Vm;

/// <summary>
/// <c>&lt;bundle&gt;/sandbox-state</c>: the path of the sandbox state directory a container's VM lives in, written at
/// Create. The `delete` subcommand is not given the runtime options (containerd passes them to `start` only), so a
/// state root chosen by a ConfigPath would otherwise be unknown to it.
/// </summary>
internal static class StateDirectoryPointer
{
    public const string FileName = "sandbox-state";

    public static void Write(string bundle, string stateDirectory) =>
        File.WriteAllText(Path.Combine(bundle, FileName), stateDirectory + "\n");

    /// <summary>The absolute path written at Create, or null (no file: a container the VM backend never created).</summary>
    public static string? Read(string bundle)
    {
        try
        {
            string path = File.ReadAllText(Path.Combine(bundle, FileName)).Trim();
            return Path.IsPathRooted(path) ? Path.TrimEndingDirectorySeparator(path) : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
