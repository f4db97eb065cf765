namespace Sandbox.Hypervisors.HostDetection;

/// <summary>Whether a device node opens read-write, and if not, why.</summary>
public static class DeviceAccess
{
    /// <summary>Opens <paramref name="devicePath"/> read-write and closes it again. Returns null on success, else the
    /// reason ("does not exist", the OS error).</summary>
    public static string? TryOpenReadWrite(string devicePath)
    {
        if (!File.Exists(devicePath))
            return $"{devicePath} does not exist";
        try
        {
            using var handle = File.OpenHandle(devicePath, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
            return null;
        }
        catch (UnauthorizedAccessException e)
        {
            return $"{devicePath} cannot be opened read-write: {e.Message}";
        }
        catch (IOException e)
        {
            return $"{devicePath} cannot be opened read-write: {e.Message}";
        }
    }
}
