namespace Sandbox.Hypervisors.HostDetection;

/// <summary>Finds an executable file by name on PATH, as a shell would.</summary>
public static class ExecutableSearch
{
    /// <summary>Full path of the first executable regular file called <paramref name="name"/> in the directories of
    /// <paramref name="searchPath"/> (default: $PATH), or null. A name containing '/' is checked as given.</summary>
    public static string? Find(string name, string? searchPath = null)
    {
        if (name.Contains('/'))
            return IsExecutableFile(name) ? Path.GetFullPath(name) : null;
        searchPath ??= Environment.GetEnvironmentVariable("PATH") ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        foreach (var directory in searchPath.Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(directory, name);
            if (IsExecutableFile(candidate))
                return candidate;
        }
        return null;
    }

    public static bool IsExecutableFile(string path)
    {
        try
        {
            if (!File.Exists(path))
                return false;
            if (OperatingSystem.IsWindows())
                return true;
            const UnixFileMode anyExecute = UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;
            return (File.GetUnixFileMode(path) & anyExecute) != 0;
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }
}
